"""Command line entry point: `python -m recordio_tools <subcommand> ...`."""

import argparse
import sys

from seq2seq.errors import Seq2SeqError
from recordio_tools import cmd_decode, cmd_encode, cmd_inspect, cmd_prepare, cmd_vocab

COMMANDS = (cmd_prepare, cmd_vocab, cmd_encode, cmd_decode, cmd_inspect)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recordio_tools",
        description="Convert parallel text corpora to the RecordIO-protobuf files and vocabularies "
                    "of SageMaker's seq2seq algorithm (train.rec, val.rec, vocab.src.json, "
                    "vocab.trg.json), and inspect or decode such files.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv=None) -> int:
    """Run one subcommand; returns the exit status (0 ok, 1 bad input, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except Seq2SeqError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
