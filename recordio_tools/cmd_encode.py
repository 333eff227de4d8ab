"""`encode`: a parallel corpus and existing vocabularies -> one .rec file."""

from recordio_tools import options
from recordio_tools.corpus import encode_corpus
from recordio_tools.progress import Progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "encode", help="write a .rec file with existing vocabularies",
        description="One record per line pair; tokens outside the vocabulary become <unk>, "
                    "pairs with an empty side are skipped. When DIR also holds subword.src.model and "
                    "subword.trg.model (from `prepare --subword`), the lines are raw text cut into pieces.")
    parser.add_argument("--source", required=True, metavar="F", help="source text, one sentence per line")
    parser.add_argument("--target", required=True, metavar="F", help="target text, aligned by line")
    parser.add_argument("--vocab", required=True, metavar="DIR", help="directory with vocab.src.json and vocab.trg.json")
    parser.add_argument("--output", required=True, metavar="F.rec", help="RecordIO-protobuf file to write")
    options.add_jobs(parser)
    options.add_quiet(parser)
    parser.set_defaults(run=run)


def run(args) -> None:
    clock = Progress("encode", enabled=False)
    source_vocab, target_vocab, subword = options.load_text_setup(args.vocab)
    stats = encode_corpus(args.source, args.target, source_vocab, target_vocab, args.output,
                          progress_enabled=not args.quiet, subword=subword, jobs=args.jobs)
    print(f"encode: {stats.pairs_written:,} pairs written, {stats.pairs_skipped:,} skipped (empty side), "
          f"unknown tokens {100 * stats.unknown_rate:.2f}%; {args.output} in {clock.elapsed:.1f} s")
