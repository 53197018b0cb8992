"""The python backend is the reference microgpt: its first steps of the 1000-step names run match.

tests/golden/names_seed42.json is the project's own python-backend run; its `reference` part holds
the figures the reference microgpt printed (step 1's loss, step 1000's, the first 5 samples). The
whole run takes ~2 minutes in pure Python; `python scripts/check_reference.py --backend python`
checks all 1000 losses, the held-out loss and the 20 samples (test_full_reference_run, slow).
"""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli, shared_file
from golden.reference import NAMES_SEED42, REFERENCE, printed_losses


def test_first_steps_of_the_1000_step_run(tmp_path):
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "python", "--stop-after", "12", "--log-every", "1",
                 "-o", str(tmp_path / "m.json")])
    assert r.returncode == 0, r.stderr
    losses = printed_losses(r.stdout)
    assert losses[0] == REFERENCE["losses"]["1"]  # the reference microgpt's first printed loss
    assert losses == NAMES_SEED42["losses"][:12]  # the golden run's (the 1000-step horizon: --stop-after)


@pytest.mark.slow
def test_full_reference_run():
    shared_file("names.txt")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "check_reference.py"), "--backend", "python"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
