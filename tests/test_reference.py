"""The python backend is the reference microgpt: its first steps of the 1000-step names run match.

The whole run takes ~3 minutes in pure Python; `python scripts/check_reference.py --backend python`
checks all 1000 losses and the 20 samples (test_full_reference_run below, marked slow).
"""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli, shared_file
from golden.reference import (NAMES_SEED42, REFERENCE_FINAL_LOSS, REFERENCE_FIRST_SAMPLES, printed_losses)


def test_golden_file_is_the_reference_run():
    assert len(NAMES_SEED42["losses"]) == 1000 and len(NAMES_SEED42["samples"]) == 20
    assert NAMES_SEED42["losses"][-1] == REFERENCE_FINAL_LOSS
    assert NAMES_SEED42["samples"][:5] == REFERENCE_FIRST_SAMPLES


def test_first_steps_of_the_1000_step_run(tmp_path):
    shared_file("names.txt")
    r = run_cli(["-m", "microgpt.train", "--backend", "python", "--stop-after", "12", "--log-every", "1",
                 "-o", str(tmp_path / "m.json")])
    assert r.returncode == 0, r.stderr
    assert printed_losses(r.stdout) == NAMES_SEED42["losses"][:12]


@pytest.mark.slow
def test_full_reference_run():
    shared_file("names.txt")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "check_reference.py"), "--backend", "python"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
