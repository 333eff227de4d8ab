"""`encode`: a parallel corpus and existing vocabularies -> one .rec file."""

from recordio_tools import options
from recordio_tools.corpus import encode_corpus
from recordio_tools.progress import Progress


def register(subparsers) -> None:
    parser = options.add_command(
        subparsers, "encode", "write a .rec file with existing vocabularies",
        "One record per line pair; tokens outside the vocabulary become <unk>, pairs with an empty side are "
        "skipped. When DIR also holds subword.src.model and subword.trg.model (from `prepare --subword`), the "
        "lines are raw text cut into pieces.",
        [("--source", "F", "source text, one sentence per line"), ("--target", "F", "target text, aligned by line"),
         options.VOCAB_DIR, ("--output", "F.rec", "RecordIO-protobuf file to write")], run)
    options.add_jobs(parser)
    options.add_quiet(parser)


def run(args) -> None:
    clock = Progress("encode", enabled=False)
    source_vocab, target_vocab, subword = options.load_text_setup(args.vocab)
    stats = encode_corpus(args.source, args.target, source_vocab, target_vocab, args.output,
                          progress_enabled=not args.quiet, subword=subword, jobs=args.jobs)
    print(f"encode: {stats.pairs_written:,} pairs written, {stats.pairs_skipped:,} skipped (empty side), "
          f"unknown tokens {100 * stats.unknown_rate:.2f}%; {args.output} in {clock.elapsed:.1f} s")
