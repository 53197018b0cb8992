"""`python -m microgpt.report`: the report's command line (command_line.py)."""

import sys

from .command_line import main

if __name__ == "__main__":
    sys.exit(main())
