"""Download the alice data into data/alice/: python scripts/download_alice.py [--force] [--dest PATH]"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from download_data import main, run_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_main(lambda argv: main(argv, scenario="alice")))
