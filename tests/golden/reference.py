"""The names run of the reference microgpt (seed 42, 1000 steps), as every backend must print it.

names_seed42.json holds the loss printed at each of the 1000 steps, the held-out loss and the 20
samples. It was written by the python backend; its last loss (2.6497) and its 20 samples are the
ones the reference microgpt prints, so a backend that matches this file matches the reference.
"""

import json
import os
import re

_HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(_HERE, "names_seed42.json")) as f:
    NAMES_SEED42 = json.load(f)

REFERENCE_FINAL_LOSS = "2.6497"  # as printed by the reference microgpt
REFERENCE_FIRST_SAMPLES = ["kamon", "ann", "karai", "jaire", "vialan"]


def printed_losses(stdout: str) -> list[str]:
    """The 4-decimal losses of the progress lines, in order."""
    return re.findall(r"^step +\d+ / +\d+ \| loss (\d+\.\d{4})", stdout, re.M)


def printed_samples(stdout: str) -> list[str]:
    return re.findall(r"^sample +\d+: (.*)$", stdout, re.M)
