"""`vocab`: build vocab.src.json and vocab.trg.json from a parallel corpus."""

from recordio_tools import options
from recordio_tools.corpus import build_vocabularies
from recordio_tools.progress import Progress


def register(subparsers) -> None:
    parser = options.add_command(
        subparsers, "vocab", "build vocab.src.json and vocab.trg.json",
        "Count whitespace tokens and write the vocabularies SageMaker's seq2seq reads.",
        [("--source", "F", "source text, one sentence per line"),
         ("--target", "F", "target text, one sentence per line"),
         ("--output", "DIR", "directory for the two vocab files")], run)
    options.add_vocab_options(parser)
    options.add_jobs(parser)
    options.add_quiet(parser)


def run(args) -> None:
    clock = Progress("vocab", enabled=False)
    source_vocab, target_vocab = build_vocabularies(
        args.source, args.target, args.min_count, args.max_vocab_size, args.joint_vocab,
        progress_enabled=not args.quiet, jobs=args.jobs)
    options.save_vocabularies(args.output, source_vocab, target_vocab)
    kind = "joint" if args.joint_vocab else "separate"
    print(f"vocab: {len(source_vocab):,} source / {len(target_vocab):,} target tokens ({kind}) "
          f"written to {args.output} in {clock.elapsed:.1f} s")
