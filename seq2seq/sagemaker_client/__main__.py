"""`python -m seq2seq.sagemaker_client submit|tune|deploy|transform|logs|status` (see seq2seq.sagemaker_client.cli)."""

import sys

from seq2seq.sagemaker_client.cli import main

if __name__ == "__main__":
    sys.exit(main())
