"""Train names (seed 42, 1000 steps) on a backend and compare with the reference run.

    python scripts/check_reference.py --backend fused [--dtype float64]

Prints how many of the 1000 printed losses and 20 samples equal tests/golden/names_seed42.json
(the reference microgpt's run) and exits 1 on any difference.
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

from golden.reference import NAMES_SEED42, printed_losses, printed_samples  # noqa: E402


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
    losses, samples = printed_losses(r.stdout), printed_samples(r.stdout)
    same_l = sum(a == b for a, b in zip(losses, NAMES_SEED42["losses"]))
    same_s = sum(a == b for a, b in zip(samples, NAMES_SEED42["samples"]))
    print(f"{args.backend} {args.dtype}: {same_l}/1000 losses and {same_s}/20 samples equal the reference "
          f"(wall {wall:.1f} s)")
    for i, (a, b) in enumerate(zip(losses, NAMES_SEED42["losses"])):
        if a != b:
            print(f"  first differing loss: step {i + 1}: {a} vs reference {b}")
            break
    ok = losses == NAMES_SEED42["losses"] and samples == NAMES_SEED42["samples"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
