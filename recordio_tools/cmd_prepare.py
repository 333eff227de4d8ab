"""`prepare`: training and validation text -> train.rec, val.rec, vocab.src.json, vocab.trg.json."""

import os
import tempfile

from seq2seq.constants import SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE, TRAIN_FILE, VALIDATION_FILE
from seq2seq.data.subword import SubwordModels, SubwordTrainingConfig, find_subword_models
from seq2seq.errors import UserError
from seq2seq.model_channel import safe_extract
from recordio_tools import options
from recordio_tools.corpus import build_vocabularies, default_jobs, encode_corpus, train_subword_models
from recordio_tools.progress import Progress


def register(subparsers) -> None:
    parser = options.add_command(
        subparsers, "prepare", "build vocabularies and write train.rec and val.rec",
        "Do what SageMaker's create_vocab_proto.py does: whitespace tokens, vocabularies from the training files "
        "(descending count, ties in reverse lexical order), one record per line pair, pairs with an empty side "
        "skipped. With --subword, the files are raw text instead: SentencePiece models trained on the training "
        "files cut it into pieces, and subword.src.model / subword.trg.model are written too.",
        [("--train-source", "F", "training source text, one sentence per line"),
         ("--train-target", "F", "training target text, aligned by line"),
         ("--val-source", "F", "validation source text"), ("--val-target", "F", "validation target text"),
         ("--output", "DIR", "directory for the four output files")], run)
    options.add_vocab_options(parser)
    options.add_subword_options(parser)
    parser.add_argument("--subword-models-from", metavar="MODEL",
                        help="reuse the subword models of a trained model (its directory or model.tar.gz) instead "
                             "of training new ones: data for fine-tuning that model is cut into the same pieces, "
                             "and its vocabularies stay the same")
    options.add_jobs(parser)
    options.add_quiet(parser)


def _subword_config(args) -> SubwordTrainingConfig:
    return SubwordTrainingConfig(model_type=args.subword, vocab_size=args.subword_vocab_size,
                                 character_coverage=args.subword_character_coverage,
                                 input_sentence_size=args.subword_sample_lines,
                                 num_threads=args.jobs or default_jobs())


def reused_subword_models(model: str) -> SubwordModels:
    """The subword models of a model directory or model archive (extracted with the model channel's checks)."""
    if os.path.isdir(model):
        found = find_subword_models(model)
    elif os.path.isfile(model):
        with tempfile.TemporaryDirectory(prefix="prepare-subword-") as scratch:
            safe_extract(model, scratch, "--subword-models-from")
            entries = os.listdir(scratch)
            root = os.path.join(scratch, entries[0]) if len(entries) == 1 and \
                os.path.isdir(os.path.join(scratch, entries[0])) else scratch
            found = find_subword_models(root)
    else:
        raise UserError(f"--subword-models-from {model}: no such directory or archive")
    if found is None:
        raise UserError(f"--subword-models-from {model}: it has no {SUBWORD_SOURCE_FILE} / {SUBWORD_TARGET_FILE} "
                        "(a word-level model: prepare its data with its vocabularies instead)")
    return found


def run(args) -> None:
    clock = Progress("prepare", enabled=False)
    options.make_output_dir(args.output)
    subword = None
    if args.subword_models_from:
        if args.subword:
            raise UserError("--subword-models-from reuses a model's subword models; --subword trains new ones: "
                            "give one of them")
        subword = reused_subword_models(args.subword_models_from)
        subword.save(args.output)
        source_vocab, target_vocab = subword.source.vocabulary(), subword.target.vocabulary()
    elif args.subword:
        if args.min_count != 1 or args.max_vocab_size != options.DEFAULT_MAX_SIZE:
            raise UserError("--min-count and --max-vocab-size apply to word vocabularies; with --subword the "
                            "vocabulary size is --subword-vocab-size")
        subword = train_subword_models(args.train_source, args.train_target, _subword_config(args),
                                       args.joint_vocab, args.output)
        source_vocab, target_vocab = subword.source.vocabulary(), subword.target.vocabulary()
    else:
        source_vocab, target_vocab = build_vocabularies(
            args.train_source, args.train_target, args.min_count, args.max_vocab_size, args.joint_vocab,
            progress_enabled=not args.quiet, jobs=args.jobs)
    train = encode_corpus(args.train_source, args.train_target, source_vocab, target_vocab,
                          os.path.join(args.output, TRAIN_FILE), progress_enabled=not args.quiet,
                          subword=subword, jobs=args.jobs)
    val = encode_corpus(args.val_source, args.val_target, source_vocab, target_vocab,
                        os.path.join(args.output, VALIDATION_FILE), progress_enabled=not args.quiet,
                        subword=subword, jobs=args.jobs)
    options.save_vocabularies(args.output, source_vocab, target_vocab)
    kind = "" if subword is None else f" {args.subword} pieces{' (joint)' if args.joint_vocab else ''}"
    if args.subword_models_from:
        kind = f" pieces of {args.subword_models_from}{' (joint)' if subword.joint else ''}"
    print(f"prepare: {train.pairs_written:,} train pairs written ({train.pairs_skipped:,} skipped), "
          f"{val.pairs_written:,} validation pairs written ({val.pairs_skipped:,} skipped); "
          f"vocab {len(source_vocab):,} source / {len(target_vocab):,} target{kind}; unknown tokens "
          f"train {100 * train.unknown_rate:.2f}% validation {100 * val.unknown_rate:.2f}%; "
          f"{args.output} in {clock.elapsed:.1f} s")
