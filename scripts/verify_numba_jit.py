"""Check that Numba really compiles the numpy backend's kernels.

    python scripts/verify_numba_jit.py

Trains one step of a tiny model on the `numpy` backend (with MICROGPT_VERIFY_JIT=1,
so the backend prints what it runs compiled) and calls the fused attention
kernels once, then prints

    JIT verification: numba JIT active (N compiled)

and exits 0; it exits 1 when nothing was compiled (e.g. NUMBA_DISABLE_JIT=1)
and 2 when Numba is not installed. No data file is needed.
"""

from __future__ import annotations

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    try:
        import numba
        import numpy as np
    except ImportError as e:
        print(f"JIT verification: FAILED, {e.name} is not installed (pip install 'microgpt[numpy]')")
        return 2

    from microgpt.compile_cache import use_source_keyed_cache

    use_source_keyed_cache()  # as building a backend does, before its kernel modules are imported
    from microgpt.backends.numpy_seq import NumpyBackend, compiled_kernels
    from microgpt.config import config_from_dict
    from microgpt.kernels import attention as attn
    from microgpt.params import init_weights

    os.environ["MICROGPT_VERIFY_JIT"] = "1"
    cfg = config_from_dict({"name": "jit_check", "model": {"n_embd": 8, "n_head": 2, "n_layer": 1, "block_size": 8},
                            "training": {"num_steps": 1}})
    vocab = 6
    docs = [[5, 0, 1, 2, 5], [5, 3, 4, 5]]
    backend = NumpyBackend(cfg, vocab, init_weights(cfg.model, vocab, random.Random(0)), docs)
    t0 = time.perf_counter()
    loss = backend.train_steps(0, 1)[0]  # prints the backend's report to stderr
    sys.stderr.flush()
    seconds = time.perf_counter() - t0

    # the API's fused attention kernels (parallel=True, prange over heads)
    q, k, v = np.ones(8), np.ones((3, 8)), np.ones((3, 8))
    out, att = attn.attention_forward_fused(q, k, v, 2)
    attn.attention_backward_fused(out, q, k, v, att, 2)
    fused = {name: len(getattr(getattr(attn, name), "signatures", ()))
             for name in ("attention_forward_fused", "attention_backward_fused")}

    counts = {**compiled_kernels(), **fused}
    compiled = sorted(name for name, n in counts.items() if n)
    print(f"one training step in {seconds:.2f} s (compile or cache load included), loss {loss:.4f}")
    print(f"numba {numba.__version__}, NUMBA_DISABLE_JIT={numba.config.DISABLE_JIT}, "
          f"threading layer config {numba.config.THREADING_LAYER!r}")
    print("compiled: " + (", ".join(compiled) or "nothing"))
    if not compiled:
        print("JIT verification: FAILED, nothing was compiled by Numba (is NUMBA_DISABLE_JIT set?)")
        return 1
    print(f"JIT verification: numba JIT active ({len(compiled)} compiled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
