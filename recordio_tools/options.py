"""Argument definitions shared by several subcommands."""

import argparse
import os

from seq2seq.constants import VOCAB_SOURCE_FILE, VOCAB_TARGET_FILE
from seq2seq.data.subword import MODEL_TYPES, load_checked_subword_models
from seq2seq.data.vocab import DEFAULT_MAX_SIZE, DEFAULT_MIN_COUNT, Vocabulary
from seq2seq.errors import UserError


VOCAB_DIR = ("--vocab", "DIR", "directory with vocab.src.json and vocab.trg.json")


def add_command(subparsers, name: str, summary: str, description: str, required, run):
    """The parser of subcommand `name`: one required argument per (flag, metavar, help) of `required`, and
    `run(args)` as what it does."""
    parser = subparsers.add_parser(name, help=summary, description=description)
    for flag, metavar, text in required:
        parser.add_argument(flag, required=True, metavar=metavar, help=text)
    parser.set_defaults(run=run)
    return parser


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


def add_subword_options(parser) -> None:
    group = parser.add_argument_group(
        "subwords", "Raw text in: train SentencePiece on the raw training text and write subword.src.model and "
                    "subword.trg.model besides the vocabularies (whose ids are the pieces' ids).")
    group.add_argument("--subword", choices=MODEL_TYPES, metavar="{unigram,bpe}",
                       help="SentencePiece model type; without it, lines are whitespace tokens as in "
                            "SageMaker's script")
    group.add_argument("--subword-vocab-size", type=positive_int, default=8000, metavar="N",
                       help="entries per subword vocabulary, <pad> <unk> <s> </s> included; a small corpus may "
                            "give fewer (default: %(default)s)")
    group.add_argument("--subword-character-coverage", type=float, default=1.0, metavar="X",
                       help="share of the training characters the model must cover; rarer ones become <unk> "
                            "(default: %(default)s)")
    group.add_argument("--subword-sample-lines", type=positive_int, default=2_000_000, metavar="N",
                       help="train on at most N sampled lines per model (default: %(default)s)")


def add_jobs(parser) -> None:
    parser.add_argument("--jobs", type=positive_int, metavar="N",
                        help="worker processes that count or encode the text (default: one per usable core)")


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


def load_text_setup(directory) -> tuple:
    """(source vocab, target vocab, SubwordModels or None) of DIR; subword models must match the vocabularies."""
    source_vocab, target_vocab = load_vocabularies(directory)
    return source_vocab, target_vocab, load_checked_subword_models(directory, source_vocab, target_vocab)


def text_decoders(source_vocab, target_vocab, subword=None) -> tuple:
    """(source, target) functions ids, where -> text: pieces joined into raw text with subword models, else
    tokens joined by spaces; an id outside the vocabulary is a UserError naming `where`."""
    def words(vocabulary):
        def decode(ids, where):
            try:
                return " ".join(vocabulary.decode(ids))
            except UserError as error:
                raise UserError(f"{where}: {error.message}") from None
        return decode

    def pieces(model):
        def decode(ids, where):
            try:
                return model.decode(ids)
            except UserError as error:
                raise UserError(f"{where}: {error.message}") from None
        return decode
    if subword is None:
        return words(source_vocab), words(target_vocab)
    return pieces(subword.source), pieces(subword.target)


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
