"""Reference point for bench_recordio: SageMaker's create_vocab_proto.py per-record work, in Python.

Re-expressed here in our own code with the same per-line and per-record operations as the
notebook script: lines read in text mode, a generator of `rstrip().split()` tokens, vocabulary
lookups with the <unk> id looked up per token, a pair skipped when a side is blank, one
`Record` message built through the protobuf Python API per pair, `SerializeToString`, the two
header words packed with `struct`, the zero padding built per record. The script spreads the
message building over worker processes fed through multiprocessing queues; this is the plain
single-process loop of the same steps.
"""

import struct
from collections import Counter
from itertools import chain, islice

from seq2seq.data.record_schema import Record

RESERVED = ["<pad>", "<unk>", "<s>", "</s>"]
MAGIC = 0xCED7230A


def line_tokens(line):
    for token in line.rstrip().split():
        if token:
            yield token


def count_lines(lines):
    reserved = set(RESERVED)
    return Counter(token for line in lines for token in line_tokens(line) if token not in reserved)


def prune(counts, max_size=50000, min_count=1):
    ranked = sorted(((count, word) for word, count in counts.items() if count >= min_count), reverse=True)
    kept = islice((word for _, word in ranked), max_size)
    return {word: index for index, word in enumerate(chain(RESERVED, kept))}


def build_vocabularies(source_path, target_path):
    """(source vocab, target vocab) dicts, counted line by line as the script does."""
    with open(source_path, encoding="utf-8") as source, open(target_path, encoding="utf-8") as target:
        return prune(count_lines(source)), prune(count_lines(target))


def pair_payload(source_ids, target_ids) -> bytes:
    record = Record()
    record.features["source"].int32_tensor.values.extend(source_ids)
    record.features["target"].int32_tensor.values.extend(target_ids)
    return record.SerializeToString()


def write_framed(stream, payload: bytes) -> None:
    length = len(payload)
    stream.write(struct.pack("I", MAGIC))
    stream.write(struct.pack("I", length))
    stream.write(payload)
    stream.write(bytes([0 for _ in range((((length + 3) >> 2) << 2) - length)]))


def encode_corpus(source_path, target_path, source_vocab, target_vocab, output_path) -> tuple:
    """Write one record per non-blank line pair; returns (pairs written, pairs skipped)."""
    written = skipped = 0
    with open(source_path, encoding="utf-8") as source, open(target_path, encoding="utf-8") as target, \
            open(output_path, "wb") as out:
        for source_line, target_line in zip(source, target):
            if source_line.strip() == "" or target_line.strip() == "":
                skipped += 1
                continue
            source_ids = [source_vocab.get(token, source_vocab["<unk>"]) for token in line_tokens(source_line)]
            target_ids = [target_vocab.get(token, target_vocab["<unk>"]) for token in line_tokens(target_line)]
            write_framed(out, pair_payload(source_ids, target_ids))
            written += 1
    return written, skipped
