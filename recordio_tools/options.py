"""Argument definitions shared by several subcommands."""

import argparse
import os

from seq2seq.constants import VOCAB_SOURCE_FILE, VOCAB_TARGET_FILE
from seq2seq.data.vocab import DEFAULT_MAX_SIZE, DEFAULT_MIN_COUNT, Vocabulary
from seq2seq.errors import UserError


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_vocab_options(parser) -> None:
    parser.add_argument("--min-count", type=positive_int, default=DEFAULT_MIN_COUNT, metavar="N",
                        help="keep tokens seen at least N times (default: %(default)s)")
    parser.add_argument("--max-vocab-size", type=positive_int, default=DEFAULT_MAX_SIZE, metavar="N",
                        help="keep at most N tokens per vocabulary besides <pad> <unk> <s> </s> "
                             "(default: %(default)s)")
    parser.add_argument("--joint-vocab", action="store_true",
                        help="one vocabulary built from source and target, written to both files")


def add_quiet(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def vocab_paths(directory) -> tuple:
    return os.path.join(directory, VOCAB_SOURCE_FILE), os.path.join(directory, VOCAB_TARGET_FILE)


def load_vocabularies(directory) -> tuple:
    """(source vocab, target vocab) from DIR/vocab.src.json and DIR/vocab.trg.json."""
    if not os.path.isdir(directory):
        raise UserError(f"vocabulary directory {directory} does not exist")
    source_path, target_path = vocab_paths(directory)
    return Vocabulary.load(source_path), Vocabulary.load(target_path)


def save_vocabularies(directory, source_vocab, target_vocab) -> None:
    os.makedirs(directory, exist_ok=True)
    source_path, target_path = vocab_paths(directory)
    source_vocab.save(source_path)
    target_vocab.save(target_path)


def make_output_dir(directory) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output directory {directory}: {error.strerror}") from None
