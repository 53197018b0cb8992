"""Train names (seed 42, 1000 steps) on a backend and compare with the golden run and the reference's figures.

    python scripts/check_reference.py --backend fused [--dtype float64]

Two comparisons, printed apart because they mean different things:

- the golden run, tests/golden/names_seed42.json: the project's own python-backend run (1000
  printed losses, the held-out loss, 20 samples). Equal means equal to the python backend.
- the reference microgpt: the only figures of its printout the project compared, kept in the
  file's `reference` part: the loss of step 1 (3.3660), of step 1000 (2.6497), the first 5 samples.

Exits 1 on any difference from either.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from golden.reference import (NAMES_SEED42, printed_losses, printed_samples, printed_val_loss,  # noqa: E402
                              reference_mismatches)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="python")
    p.add_argument("--dtype", default="float64")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "microgpt.train", "--scenario", "names", "--backend", args.backend,
               "--dtype", args.dtype, "--log-every", "1", "-o", os.path.join(tmp, "model.json")]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if r.returncode:
        print(r.stderr, file=sys.stderr)
        return 1
    losses, samples, val = printed_losses(r.stdout), printed_samples(r.stdout), printed_val_loss(r.stdout)
    same_l = sum(a == b for a, b in zip(losses, NAMES_SEED42["losses"]))
    same_s = sum(a == b for a, b in zip(samples, NAMES_SEED42["samples"]))
    same_v = "equal" if val == NAMES_SEED42["val_loss"] else f"{val} against {NAMES_SEED42['val_loss']}"
    print(f"{args.backend} {args.dtype} (wall {wall:.1f} s):")
    print(f"  golden run (the project's python backend): {same_l}/1000 losses, {same_s}/20 samples equal; "
          f"val loss {same_v}")
    for i, (a, b) in enumerate(zip(losses, NAMES_SEED42["losses"])):
        if a != b:
            print(f"    first differing loss: step {i + 1}: {a} vs golden {b}")
            break
    off = reference_mismatches(losses, samples)
    print("  reference microgpt (step 1 and step 1000 losses, first 5 samples): "
          + ("all equal" if not off else "; ".join(off)))
    ok = (losses == NAMES_SEED42["losses"] and samples == NAMES_SEED42["samples"] and val == NAMES_SEED42["val_loss"]
          and not off)
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
