"""The names run (seed 42, 1000 steps) every backend must print, and which of its figures are the reference's.

names_seed42.json is the project's own run, written by the python backend: the loss printed at each
of the 1000 steps, the held-out loss and the 20 samples. Only its `reference` part was compared with
the reference microgpt's printout: the loss of step 1 (3.3660), that of step 1000 (2.6497) and the
first 5 samples. A backend that prints the whole file matches the python backend everywhere and the
reference microgpt at those figures; the rest of the file is not evidence about the reference.
"""

import json
import os
import re

_HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(_HERE, "names_seed42.json")) as f:
    NAMES_SEED42 = json.load(f)

REFERENCE = NAMES_SEED42["reference"]


def printed_losses(stdout: str) -> list[str]:
    """The 4-decimal losses of the progress lines, in order."""
    return re.findall(r"^step +\d+ / +\d+ \| loss (\d+\.\d{4})", stdout, re.M)


def printed_samples(stdout: str) -> list[str]:
    return re.findall(r"^sample +\d+: (.*)$", stdout, re.M)


def printed_val_loss(stdout: str) -> str | None:
    found = re.findall(r"^val loss: (\d+\.\d{4}) ", stdout, re.M)
    return found[-1] if found else None


def reference_mismatches(losses: list[str], samples: list[str]) -> list[str]:
    """Where a run's printed losses (1000) and samples differ from the figures the reference microgpt printed."""
    out = []
    for step, want in REFERENCE["losses"].items():
        got = losses[int(step) - 1] if len(losses) >= int(step) else None
        if got != want:
            out.append(f"step {step}: loss {got}, the reference printed {want}")
    first = REFERENCE["first_samples"]
    if samples[:len(first)] != first:
        out.append(f"first samples {samples[:len(first)]}, the reference printed {first}")
    return out


def assert_is_the_golden_run(stdout: str) -> None:
    """The training CLI's output (names, seed 42, 1000 steps, --log-every 1) is the golden run, line for line."""
    assert printed_losses(stdout) == NAMES_SEED42["losses"]
    assert printed_val_loss(stdout) == NAMES_SEED42["val_loss"]  # compared as a string: no regex to escape
    assert printed_samples(stdout) == NAMES_SEED42["samples"]
