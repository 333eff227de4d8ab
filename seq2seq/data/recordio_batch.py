"""Vectorized writer of seq2seq RecordIO-protobuf records: many sentence pairs in a few numpy passes.

Produces, byte for byte, what `recordio_codec.frame_record(recordio_codec.encode_pair(s, t))`
produces through the protobuf library (deterministic serialization, map keys sorted, so
`source` before `target`); tests/unit/test_recordio_codec.py checks the equality on random pairs.
Only the writer takes this shortcut; every reader parses with the protobuf library.

Layout of one record (all lengths are base-128 varints):

    magic u32 | lrecord u32 | payload | zero padding to a multiple of 4
    payload = entry("source") entry("target")
    entry(k)  = 0x0A len(E) | 0x0A 0x06 k | 0x12 len(V) | V      (Record.features map entry)
    V         = 0x3A len(T) | T                                  (Value.int32_tensor)
    T         = 0x0A len(P) | P   when P is not empty, else empty  (Int32Tensor.values, packed)
    P         = varint(id) for each id
"""

import numpy as np

from seq2seq.errors import UserError

MAGIC = 0xCED7230A
MAX_RECORD_LENGTH = (1 << 29) - 1
MAX_ID = (1 << 31) - 1
_KEY_BYTES = {name: np.frombuffer(b"\x0a\x06" + name.encode(), dtype=np.uint8)
              for name in ("source", "target")}
_VARINT_BOUNDS = (1 << 7, 1 << 14, 1 << 21, 1 << 28)


def varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes of the base-128 varint of each value; values (n,) int64 in [0, 2**35)."""
    sizes = np.ones(values.shape, dtype=np.int64)
    largest = int(values.max()) if len(values) else 0
    for bound in _VARINT_BOUNDS:
        if largest < bound:
            break
        sizes += values >= bound
    return sizes


def put_varints(out: np.ndarray, positions: np.ndarray, values: np.ndarray, sizes: np.ndarray) -> None:
    """Write the varint of values[i] (sizes[i] bytes) at out[positions[i]:]; all (n,) int64."""
    for byte_index in range(5):
        if byte_index:
            keep = np.flatnonzero(sizes > byte_index)
            if not len(keep):
                return
            positions, values, sizes = positions[keep], values[keep], sizes[keep]
        more = (sizes > byte_index + 1).astype(np.int64) << 7
        out[positions + byte_index] = ((values >> (7 * byte_index)) & 0x7F) | more


def put_varint_run(out: np.ndarray, positions: np.ndarray, values: np.ndarray, sizes: np.ndarray) -> None:
    """Like put_varints for varints that follow each other (positions[i+1] = positions[i] + sizes[i]).

    Every value writes its widest byte count, the last byte first: a byte past a short varint is
    overwritten by the next varint later, or lands in space that is written after this call (the
    caller leaves max(sizes) bytes of slack at the end of `out`).
    """
    width = int(sizes.max()) if len(sizes) else 0
    for byte_index in reversed(range(width)):
        chunk = (values >> (7 * byte_index)) & 0x7F
        if byte_index < width - 1:
            chunk |= (sizes > byte_index + 1).astype(np.int64) << 7
        out[positions + byte_index] = chunk


def _put_byte(out, positions, byte):
    out[positions] = byte
    return positions + 1


def _put_length(out, positions, lengths):
    sizes = varint_sizes(lengths)
    put_varints(out, positions, lengths, sizes)
    return positions + sizes


class _Side:
    """Sizes of one feature ("source" or "target") of every record: ids (t,), lengths (n,)."""

    def __init__(self, name, ids, lengths):
        self.name = name
        self.ids = ids
        self.lengths = lengths
        self.id_sizes = varint_sizes(ids)
        ends = np.cumsum(self.id_sizes)
        self.id_offsets = ends - self.id_sizes                   # start of each id in P, globally
        line_ends = np.cumsum(lengths)
        line_starts = line_ends - lengths
        padded = np.concatenate([[0], ends])
        self.packed = padded[line_ends] - padded[line_starts]    # len(P) per record
        self.first_offset = np.concatenate([self.id_offsets, [0]])[line_starts]
        self.tensor = np.where(self.packed > 0, 1 + varint_sizes(self.packed) + self.packed, 0)
        self.value = 1 + varint_sizes(self.tensor) + self.tensor
        self.entry = 8 + 1 + varint_sizes(self.value) + self.value
        self.field = 1 + varint_sizes(self.entry) + self.entry

    @property
    def header_size(self) -> np.ndarray:
        """Bytes before the packed ids in this side's map entry, per record (n,)."""
        nonempty = self.packed > 0
        return (1 + varint_sizes(self.entry) + 8 + 1 + varint_sizes(self.value) + 1
                + varint_sizes(self.tensor) + nonempty * (1 + varint_sizes(self.packed)))

    def write_ids(self, out, packed_starts) -> None:
        """Write the packed ids of every record at packed_starts (n,); garbage may follow each run."""
        id_positions = np.repeat(packed_starts - self.first_offset, self.lengths) + self.id_offsets
        put_varint_run(out, id_positions, self.ids, self.id_sizes)

    def write_header(self, out, positions) -> None:
        """Write the map entry's bytes before the packed ids of every record at positions (n,)."""
        positions = _put_byte(out, positions, 0x0A)
        positions = _put_length(out, positions, self.entry)
        out[positions[:, None] + np.arange(8)] = _KEY_BYTES[self.name]
        positions = _put_byte(out, positions + 8, 0x12)
        positions = _put_length(out, positions, self.value)
        positions = _put_byte(out, positions, 0x3A)
        positions = _put_length(out, positions, self.tensor)
        rows = np.flatnonzero(self.packed > 0)
        if len(rows) < len(positions):
            positions = positions[rows]
        positions = _put_byte(out, positions, 0x0A)
        _put_length(out, positions, self.packed[rows])


def _as_ids(name, ids, lengths, first_pair=0):
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if (lengths < 0).any() or lengths.sum() != len(ids):
        raise ValueError(f"{name} lengths must be >= 0 and sum to the number of ids ({len(ids)})")
    bad = np.flatnonzero((ids < 0) | (ids > MAX_ID))
    if len(bad):
        pair = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
        raise UserError(f"pair {first_pair + pair}: {name} id {int(ids[bad[0]])} is not in 0..{MAX_ID}")
    return ids, lengths


def encode_records(source_ids, source_lengths, target_ids, target_lengths, first_pair: int = 0) -> bytes:
    """RecordIO bytes (cflag 0, padded) of n pairs given as flat ids (t,) and lengths (n,) per side.

    `first_pair` numbers the pairs in error messages (the index of the first pair in its input).
    """
    source = _Side("source", *_as_ids("source", source_ids, source_lengths, first_pair))
    target = _Side("target", *_as_ids("target", target_ids, target_lengths, first_pair))
    if len(source.lengths) != len(target.lengths):
        raise ValueError(f"{len(source.lengths)} source lengths but {len(target.lengths)} target lengths")
    payload = source.field + target.field
    too_long = np.flatnonzero(payload > MAX_RECORD_LENGTH)
    if len(too_long):
        raise UserError(f"pair {first_pair + int(too_long[0])}: record of {int(payload[too_long[0]])} bytes exceeds "
                        f"the RecordIO limit of {MAX_RECORD_LENGTH} bytes")
    record_sizes = 8 + ((payload + 3) >> 2 << 2)
    starts = np.cumsum(record_sizes) - record_sizes
    total = int(record_sizes.sum())
    out = np.zeros(total + 8, dtype=np.uint8)           # slack for put_varint_run
    source_header = starts + 8
    source_packed = source_header + source.header_size
    target_header = source_packed + source.packed
    target_packed = target_header + target.header_size
    source.write_ids(out, source_packed)                # ids first: headers and padding overwrite
    target.write_ids(out, target_packed)                # whatever the runs spill past their end
    source.write_header(out, source_header)
    target.write_header(out, target_header)
    payload_ends = target_packed + target.packed
    for pad_index in range(3):
        rows = np.flatnonzero(record_sizes - 8 - payload > pad_index)
        out[payload_ends[rows] + pad_index] = 0
    words = out[:total].view("<u4")
    words[starts >> 2] = MAGIC
    words[(starts >> 2) + 1] = payload
    return out[:total].tobytes()
