"""`inspect`: record count and length statistics of a .rec file, first records as text."""

import numpy as np

from seq2seq.constants import UNK_ID
from seq2seq.data.recordio_codec import read_pairs
from recordio_tools import options
from recordio_tools.progress import Progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect", help="count records and summarize sentence lengths",
        description="Read every record (checking the framing and the protobuf payloads) and print "
                    "the record count, length statistics and the first records.")
    parser.add_argument("input", metavar="F.rec", help="RecordIO-protobuf file to read")
    parser.add_argument("--vocab", metavar="DIR", help="show the first records as text using DIR's vocabularies "
                                                       "(and subword models, if there are any)")
    parser.add_argument("--show", type=int, default=3, metavar="N", help="records to show (default: %(default)s)")
    options.add_quiet(parser)
    parser.set_defaults(run=run)


def _describe(name: str, lengths: np.ndarray) -> str:
    if not len(lengths):
        return f"  {name} length: no records"
    p95 = np.percentile(lengths, 95)
    return (f"  {name} length: min {lengths.min()}, mean {lengths.mean():.1f}, median {np.median(lengths):g}, "
            f"p95 {p95:g}, max {lengths.max()}, empty {np.count_nonzero(lengths == 0)}")


def _show(index, source, target, decoders, name) -> str:
    if decoders is None:
        return f"  [{index}] source ids {source.tolist()}\n      target ids {target.tolist()}"
    return (f"  [{index}] source: {decoders[0](source, f'{name}, record {index}, source')}\n"
            f"      target: {decoders[1](target, f'{name}, record {index}, target')}")


def run(args) -> None:
    progress = Progress(f"reading {args.input}", not args.quiet)
    decoders = options.text_decoders(*options.load_text_setup(args.vocab)) if args.vocab else None
    lengths = {"source": [], "target": []}
    unknown = tokens = 0
    shown = []
    for index, (source, target) in enumerate(read_pairs(args.input, require_target=False)):
        lengths["source"].append(len(source))
        lengths["target"].append(len(target))
        unknown += int(np.count_nonzero(source == UNK_ID) + np.count_nonzero(target == UNK_ID))
        tokens += len(source) + len(target)
        if index < args.show:
            shown.append(_show(index, source, target, decoders, args.input))
        if index % 4096 == 0:
            progress.update(0.0, index)
    count = len(lengths["source"])
    print(f"{args.input}: {count:,} records, {tokens:,} tokens, <unk> {100 * unknown / max(tokens, 1):.2f}%")
    for name, values in lengths.items():
        print(_describe(name, np.array(values, dtype=np.int64)))
    for line in shown:
        print(line)
