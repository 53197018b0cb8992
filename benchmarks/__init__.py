"""The asv suite: kernels.py, training.py, startup.py (docs/benchmarking.md).

asv imports these modules in forked workers, so they import nothing heavy and
run nothing parallel at import time; every benchmark compiles in `setup`.

`asv run --python=same` times whatever `import microgpt` finds. Without an
installed microgpt (a plain checkout), fall back to the checkout this suite
sits in; in asv's own virtualenvs the wheel of the commit is installed and
this changes nothing.
"""

import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if importlib.util.find_spec("microgpt") is None:
    sys.path.insert(0, ROOT)

