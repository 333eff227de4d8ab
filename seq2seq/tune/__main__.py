"""`python -m seq2seq.tune` (see seq2seq.tune.cli)."""

import sys

from seq2seq.tune.cli import main

if __name__ == "__main__":
    sys.exit(main())
