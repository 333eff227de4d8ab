"""`vocab`: build vocab.src.json and vocab.trg.json from a parallel corpus."""

from recordio_tools import options
from recordio_tools.corpus import build_vocabularies
from recordio_tools.progress import Progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "vocab", help="build vocab.src.json and vocab.trg.json",
        description="Count whitespace tokens and write the vocabularies SageMaker's seq2seq reads.")
    parser.add_argument("--source", required=True, metavar="F", help="source text, one sentence per line")
    parser.add_argument("--target", required=True, metavar="F", help="target text, one sentence per line")
    parser.add_argument("--output", required=True, metavar="DIR", help="directory for the two vocab files")
    options.add_vocab_options(parser)
    options.add_quiet(parser)
    parser.set_defaults(run=run)


def run(args) -> None:
    clock = Progress("vocab", enabled=False)
    source_vocab, target_vocab = build_vocabularies(
        args.source, args.target, args.min_count, args.max_vocab_size, args.joint_vocab,
        progress_enabled=not args.quiet)
    options.save_vocabularies(args.output, source_vocab, target_vocab)
    kind = "joint" if args.joint_vocab else "separate"
    print(f"vocab: {len(source_vocab):,} source / {len(target_vocab):,} target tokens ({kind}) "
          f"written to {args.output} in {clock.elapsed:.1f} s")
