"""`python -m seq2seq.sagemaker submit|deploy|transform|logs|status` (see seq2seq.sagemaker.cli)."""

import sys

from seq2seq.sagemaker.cli import main

if __name__ == "__main__":
    sys.exit(main())
