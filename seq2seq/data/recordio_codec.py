"""The seq2seq RecordIO-protobuf format: the only module that knows its bytes.

A file is a sequence of RecordIO records (dmlc-core framing), each holding one serialized
`aialgs.data.Record` protobuf with `features["source"]` and `features["target"]` Int32Tensors of
token ids (no <s>/</s>):

    u32 magic 0xCED7230A (little-endian) | u32 lrecord | payload | zero padding to 4 bytes
    length = lrecord & (2**29 - 1); cflag = lrecord >> 29

cflag 0 is a whole record. dmlc's C++ writer splits a payload wherever the magic occurs at a
4-byte aligned offset into parts flagged 1 (first), 2 (middle), 3 (last); readers join the parts
and put the magic back between them. Our writers emit cflag 0, like SageMaker's Python writers.

Readers yield `(source, target)` int32 arrays of shape (length,) and raise `DataFormatError`
naming the input, the record index (0-based) and the byte offset of the record's header.
"""

import os
import struct
from typing import BinaryIO, Iterable, Iterator, Sequence, Tuple

import numpy as np
from google.protobuf.message import DecodeError

from seq2seq.atomic_write import atomic_output
from seq2seq.constants import SOURCE_FEATURE, TARGET_FEATURE
from seq2seq.data import recordio_batch
from seq2seq.data.record_schema import Record
from seq2seq.errors import DataFormatError, UserError

MAGIC = recordio_batch.MAGIC
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_MASK = (1 << 29) - 1
HEADER = struct.Struct("<II")
CFLAG_FULL, CFLAG_START, CFLAG_MIDDLE, CFLAG_END = 0, 1, 2, 3

Pair = Tuple[np.ndarray, np.ndarray]


def _check_ids(name: str, ids) -> list:
    ids = [int(token_id) for token_id in ids]
    for position, token_id in enumerate(ids):
        if not 0 <= token_id <= recordio_batch.MAX_ID:
            raise UserError(f"{name} id {token_id} at position {position} is not in 0..{recordio_batch.MAX_ID}")
    return ids


def encode_pair(source: Sequence[int], target: Sequence[int]) -> bytes:
    """Protobuf payload of one Record holding `source` and `target` ids (no framing)."""
    record = Record()
    for name, ids in ((SOURCE_FEATURE, source), (TARGET_FEATURE, target)):
        tensor = record.features[name].int32_tensor
        tensor.SetInParent()
        tensor.values.extend(_check_ids(name, ids))
    return record.SerializeToString(deterministic=True)


def _frame_part(cflag: int, part: bytes) -> bytes:
    padding = b"\0" * (-len(part) % 4)
    return HEADER.pack(MAGIC, (cflag << 29) | len(part)) + part + padding


def frame_record(payload: bytes, split_magic: bool = False) -> bytes:
    """RecordIO framing of `payload`: one cflag-0 record, padded to 4 bytes.

    With split_magic, split the payload at every 4-byte aligned occurrence of the magic into
    cflag 1/2/3 parts, as dmlc-core's C++ RecordIOWriter does.
    """
    if len(payload) > LENGTH_MASK:
        raise UserError(f"record of {len(payload)} bytes exceeds the RecordIO limit of {LENGTH_MASK} bytes")
    cuts = []
    if split_magic:
        cuts = [i for i in range(0, len(payload) - 3, 4) if payload[i:i + 4] == MAGIC_BYTES]
    if not cuts:
        return _frame_part(CFLAG_FULL, payload)
    parts, start = [], 0
    for index, cut in enumerate(cuts):
        parts.append(_frame_part(CFLAG_START if index == 0 else CFLAG_MIDDLE, payload[start:cut]))
        start = cut + 4
    parts.append(_frame_part(CFLAG_END, payload[start:]))
    return b"".join(parts)


def _flatten(pairs) -> tuple:
    source_lengths, target_lengths, source_ids, target_ids = [], [], [], []
    for source, target in pairs:
        source_lengths.append(len(source))
        target_lengths.append(len(target))
        source_ids.extend(source)
        target_ids.extend(target)
    return source_ids, source_lengths, target_ids, target_lengths


def pairs_to_bytes(pairs: Iterable[Tuple[Sequence[int], Sequence[int]]], first_pair: int = 0) -> bytes:
    """RecordIO bytes of all (source ids, target ids) pairs, one cflag-0 record per pair.

    `first_pair` is added to pair indices in error messages.
    """
    return recordio_batch.encode_records(*_flatten(pairs), first_pair=first_pair)


class RecordWriter:
    """Writes pairs to a path (atomically: temp file, rename on clean close) or a binary stream.

    Pairs are buffered and encoded in batches; `count` is the number of pairs written so far.
    Use as a context manager; an exception inside the block leaves an existing path untouched.
    """

    def __init__(self, target, batch_size: int = 4096):
        self._path = None if hasattr(target, "write") else os.fspath(target)
        self._stream = None if self._path else target
        self._context = None
        self._batch = []
        self._batch_size = batch_size
        self.count = 0

    def __enter__(self):
        if self._path is not None:
            self._context = atomic_output(self._path)
            self._stream = self._context.__enter__()
        return self

    def write(self, source: Sequence[int], target: Sequence[int]) -> None:
        """Queue one pair of id sequences; an id outside 0..2**31-1 raises UserError naming the
        pair's index, at the latest when the batch is flushed."""
        self._batch.append((source, target))
        self.count += 1
        if len(self._batch) >= self._batch_size:
            self.flush()

    def write_batch(self, source_ids, source_lengths, target_ids, target_lengths) -> None:
        """Write n pairs given as flat id arrays (t,) and per-pair lengths (n,) for each side."""
        self.flush()
        self._stream.write(recordio_batch.encode_records(source_ids, source_lengths, target_ids,
                                                         target_lengths, first_pair=self.count))
        self.count += len(source_lengths)

    def write_encoded(self, data: bytes, count: int) -> None:
        """Append `count` records already framed by recordio_batch.encode_records."""
        self.flush()
        self._stream.write(data)
        self.count += count

    def flush(self) -> None:
        if self._batch:
            data = pairs_to_bytes(self._batch, first_pair=self.count - len(self._batch))
            self._batch = []
            self._stream.write(data)

    def __exit__(self, error_type, error, traceback):
        if error_type is None:
            self.flush()
        self._batch = []
        if self._context is not None:
            return self._context.__exit__(error_type, error, traceback)
        return False


class _FrameReader:
    """Reads RecordIO parts from a binary stream in large chunks, tracking the byte offset."""

    def __init__(self, stream, data: bytes = b"", chunk_size: int = 1 << 20):
        self._stream = stream
        self._buffer = data
        self._position = 0          # in _buffer
        self._buffer_offset = 0     # input offset of _buffer[0]
        self._chunk_size = chunk_size

    @property
    def offset(self) -> int:
        return self._buffer_offset + self._position

    def _fill(self, needed: int) -> int:
        """Make `needed` bytes available from the position if the input has them; returns what is."""
        available = len(self._buffer) - self._position
        if available >= needed or self._stream is None:
            return available
        pieces = [self._buffer[self._position:]]
        self._buffer_offset += self._position
        while available < needed:
            chunk = self._stream.read(max(self._chunk_size, needed - available))
            if not chunk:
                break
            pieces.append(chunk)
            available += len(chunk)
        self._buffer = b"".join(pieces)
        self._position = 0
        return available

    def next_part(self, name: str, record_index: int):
        """(offset, cflag, payload) of the next part, or None at the end of the input."""
        offset = self.offset
        available = self._fill(8)
        if available == 0:
            return None
        if available < 8:
            raise DataFormatError(f"truncated record header: {available} of 8 bytes", name, offset, record_index)
        magic, lrecord = HEADER.unpack_from(self._buffer, self._position)
        if magic != MAGIC:
            raise DataFormatError(f"bad RecordIO magic 0x{magic:08X} (expected 0x{MAGIC:08X})",
                                  name, offset, record_index)
        length, cflag = lrecord & LENGTH_MASK, lrecord >> 29
        available = self._fill(8 + length) - 8
        if available < length:
            raise DataFormatError(f"truncated record payload: header announces {length} bytes, "
                                  f"{available} left in the input", name, offset, record_index)
        start = self._position + 8
        payload = self._buffer[start:start + length]
        padded = 8 + ((length + 3) & ~3)
        self._position += min(padded, self._fill(padded))  # missing padding at the very end is tolerated
        return offset, cflag, payload


def _iter_payloads(reader: _FrameReader, name: str) -> Iterator[Tuple[int, int, bytes]]:
    """(record index, header offset, payload) of each logical record, parts joined."""
    index = 0
    while True:
        part = reader.next_part(name, index)
        if part is None:
            return
        offset, cflag, payload = part
        if cflag == CFLAG_FULL:
            yield index, offset, payload
        elif cflag == CFLAG_START:
            yield index, offset, _join_parts(reader, name, index, offset, payload)
        elif cflag in (CFLAG_MIDDLE, CFLAG_END):
            raise DataFormatError(f"continuation flag {cflag} without a preceding part with flag 1",
                                  name, offset, index)
        else:
            raise DataFormatError(f"invalid continuation flag {cflag} (must be 0..3)", name, offset, index)
        index += 1


def _join_parts(reader, name, index, start_offset, first) -> bytes:
    parts = [first]
    while True:
        part = reader.next_part(name, index)
        if part is None:
            raise DataFormatError("input ends inside a multi-part record (no part with flag 3)",
                                  name, start_offset, index)
        offset, cflag, payload = part
        if cflag not in (CFLAG_MIDDLE, CFLAG_END):
            raise DataFormatError(f"continuation flag {cflag} inside a multi-part record started at "
                                  f"byte offset {start_offset} (expected 2 or 3)", name, offset, index)
        parts.append(payload)
        if cflag == CFLAG_END:
            return MAGIC_BYTES.join(parts)


def _feature_values(features, key, required, name, offset, index) -> list:
    """The ids of features[key] as a list; an empty list when optional and absent."""
    if key not in features:
        if required:
            raise DataFormatError(f'features["{key}"] is missing', name, offset, index)
        return []
    value = features[key]
    kind = value.WhichOneof("value")
    if kind != "int32_tensor":
        if kind is None and not required:
            return []
        raise DataFormatError(f'features["{key}"] holds {kind or "no tensor"}, expected int32_tensor',
                              name, offset, index)
    return value.int32_tensor.values[:]


class _PairBatch:
    """Ids of a run of parsed records, converted to numpy in one pass: far cheaper per record."""

    def __init__(self):
        self.ids = ([], [])           # flat source ids, flat target ids
        self.lengths = ([], [])       # per record
        self.where = []               # (index, offset) per record, for error messages

    def add(self, source: list, target: list, index: int, offset: int) -> None:
        for side, values in enumerate((source, target)):
            self.ids[side].extend(values)
            self.lengths[side].append(len(values))
        self.where.append((index, offset))

    def pairs(self, name: str) -> tuple:
        """(pairs, error): int32 (source, target) arrays of the records before the first record
        with a negative id, and a DataFormatError for that record (None if there is none)."""
        good, error = len(self.where), None
        sides = []
        for side, key in enumerate((SOURCE_FEATURE, TARGET_FEATURE)):
            ids, ends = np.array(self.ids[side], dtype=np.int32), np.cumsum(self.lengths[side], dtype=np.int64)
            negative = np.flatnonzero(ids < 0)
            if len(negative):
                record = int(np.searchsorted(ends, negative[0], side="right"))
                if record < good:
                    good, error = record, self._negative_error(key, ids, ends, record, name)
            sides.append((ids, [0] + ends.tolist()))
        pairs = [tuple(ids[bounds[row]:bounds[row + 1]] for ids, bounds in sides) for row in range(good)]
        return pairs, error

    def _negative_error(self, key, ids, ends, record, name) -> DataFormatError:
        start = int(ends[record - 1]) if record else 0
        values = ids[start:int(ends[record])]
        position = int(np.flatnonzero(values < 0)[0])
        index, offset = self.where[record]
        return DataFormatError(f'features["{key}"] has negative token id {values[position]} at position '
                               f"{position}", name, offset, index)


def _parse(payload, name, offset, index, require_target) -> tuple:
    try:
        features = Record.FromString(payload).features
    except DecodeError as error:
        raise DataFormatError(f"payload of {len(payload)} bytes is not an aialgs.data.Record "
                              f"protobuf ({error})", name, offset, index) from None
    source = _feature_values(features, SOURCE_FEATURE, True, name, offset, index)
    target = _feature_values(features, TARGET_FEATURE, require_target, name, offset, index)
    return source, target


def _decode_pairs(payloads, name, require_target, batch_size=512) -> Iterator[Pair]:
    """Parse payloads with the protobuf library; yields every good pair before raising an error."""
    batch, error = _PairBatch(), None
    while error is None:
        try:
            index, offset, payload = next(payloads)
            source, target = _parse(payload, name, offset, index, require_target)
        except StopIteration:
            break
        except DataFormatError as format_error:
            error = format_error
            break
        batch.add(source, target, index, offset)
        if len(batch.where) >= batch_size:
            pairs, error = batch.pairs(name)
            yield from pairs
            batch = _PairBatch()
    if batch.where:
        pairs, batch_error = batch.pairs(name)
        yield from pairs
        error = batch_error or error        # a negative id comes before a later framing error
    if error is not None:
        raise error


def read_pairs_from_stream(stream: BinaryIO, name: str, require_target: bool = True) -> Iterator[Pair]:
    """Pairs from a binary stream read front to back without seeking (e.g. a Pipe-mode FIFO)."""
    reader = _FrameReader(stream)
    return _decode_pairs(_iter_payloads(reader, name), name, require_target)


def read_pairs_from_bytes(data: bytes, name: str = "<request body>",
                          require_target: bool = True) -> Iterator[Pair]:
    """Pairs from an in-memory RecordIO byte string (e.g. an HTTP request body)."""
    reader = _FrameReader(None, bytes(data))
    return _decode_pairs(_iter_payloads(reader, name), name, require_target)


def read_pairs(path, require_target: bool = True) -> Iterator[Pair]:
    """Pairs of a .rec file; the file is read in chunks and closed when the iterator finishes."""
    path = os.fspath(path)
    try:
        stream = open(path, "rb")
    except OSError as error:
        raise UserError(f"cannot open RecordIO file {path}: {error.strerror}") from None
    with stream:
        yield from read_pairs_from_stream(stream, path, require_target)


def count_records(path) -> int:
    """Number of logical records of a .rec file, checking the framing but not the payloads."""
    path = os.fspath(path)
    with open(path, "rb") as stream:
        return sum(1 for _ in _iter_payloads(_FrameReader(stream), path))


__all__ = ["MAGIC", "encode_pair", "frame_record", "pairs_to_bytes", "RecordWriter", "read_pairs",
           "read_pairs_from_bytes", "read_pairs_from_stream", "count_records"]
