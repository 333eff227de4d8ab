"""`decode`: a .rec file -> source and target text, ids turned back into tokens."""

from seq2seq.atomic_write import atomic_output
from seq2seq.data.recordio_codec import read_pairs
from recordio_tools import options
from recordio_tools.progress import Progress


def register(subparsers) -> None:
    parser = options.add_command(
        subparsers, "decode", "turn a .rec file back into text",
        "Write one line per record: the tokens of its ids separated by spaces (out-of-vocabulary tokens come "
        "back as <unk>). When DIR also holds subword models, the pieces are joined back into raw text.",
        [("--input", "F.rec", "RecordIO-protobuf file to read"), options.VOCAB_DIR,
         ("--source", "OUT", "source text file to write"), ("--target", "OUT", "target text file to write")], run)
    options.add_quiet(parser)


def run(args) -> None:
    progress = Progress(f"decoding {args.input}", not args.quiet)
    source_vocab, target_vocab, subword = options.load_text_setup(args.vocab)
    source_text, target_text = options.text_decoders(source_vocab, target_vocab, subword)
    count = 0
    with atomic_output(args.source) as source_out, atomic_output(args.target) as target_out:
        for source_ids, target_ids in read_pairs(args.input, require_target=False):
            source_out.write((source_text(source_ids, f"{args.input}, record {count}, source") + "\n").encode("utf-8"))
            target_out.write((target_text(target_ids, f"{args.input}, record {count}, target") + "\n").encode("utf-8"))
            count += 1
            if count % 4096 == 0:
                progress.update(0.0, count)
    print(f"decode: {count:,} records written to {args.source} and {args.target} in {progress.elapsed:.1f} s")
