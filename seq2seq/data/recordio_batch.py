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
    for bound in _VARINT_BOUNDS:
        sizes += values >= bound
    return sizes


def put_varints(out: np.ndarray, positions: np.ndarray, values: np.ndarray, sizes: np.ndarray) -> None:
    """Write the varint of values[i] (sizes[i] bytes) at out[positions[i]:]; all (n,) int64."""
    positions, values, sizes = positions, values, sizes
    for byte_index in range(5):
        if byte_index:
            keep = np.flatnonzero(sizes > byte_index)
            if not len(keep):
                return
            positions, values, sizes = positions[keep], values[keep], sizes[keep]
        more = (sizes > byte_index + 1).astype(np.int64) << 7
        out[positions + byte_index] = ((values >> (7 * byte_index)) & 0x7F) | more


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

    def write(self, out, positions):
        """Write this side's map entry of every record at `positions`; returns the end positions."""
        positions = _put_byte(out, positions, 0x0A)
        positions = _put_length(out, positions, self.entry)
        out[positions[:, None] + np.arange(8)] = _KEY_BYTES[self.name]
        positions = _put_byte(out, positions + 8, 0x12)
        positions = _put_length(out, positions, self.value)
        positions = _put_byte(out, positions, 0x3A)
        positions = _put_length(out, positions, self.tensor)
        nonempty = self.packed > 0
        if not nonempty.all():
            positions = positions.copy()
            rows = np.flatnonzero(nonempty)
            rows_positions = _put_byte(out, positions[rows], 0x0A)
            positions[rows] = _put_length(out, rows_positions, self.packed[rows])
        else:
            positions = _put_byte(out, positions, 0x0A)
            positions = _put_length(out, positions, self.packed)
        id_positions = np.repeat(positions - self.first_offset, self.lengths) + self.id_offsets
        put_varints(out, id_positions, self.ids, self.id_sizes)
        return positions + self.packed


def _as_ids(name, ids, lengths):
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if (lengths < 0).any() or lengths.sum() != len(ids):
        raise ValueError(f"{name} lengths must be >= 0 and sum to the number of ids ({len(ids)})")
    bad = np.flatnonzero((ids < 0) | (ids > MAX_ID))
    if len(bad):
        pair = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
        raise UserError(f"pair {pair}: {name} id {int(ids[bad[0]])} is not in 0..{MAX_ID}")
    return ids, lengths


def encode_records(source_ids, source_lengths, target_ids, target_lengths) -> bytes:
    """RecordIO bytes (cflag 0, padded) of n pairs given as flat ids (t,) and lengths (n,) per side."""
    source = _Side("source", *_as_ids("source", source_ids, source_lengths))
    target = _Side("target", *_as_ids("target", target_ids, target_lengths))
    if len(source.lengths) != len(target.lengths):
        raise ValueError(f"{len(source.lengths)} source lengths but {len(target.lengths)} target lengths")
    payload = source.field + target.field
    too_long = np.flatnonzero(payload > MAX_RECORD_LENGTH)
    if len(too_long):
        raise UserError(f"pair {int(too_long[0])}: record of {int(payload[too_long[0]])} bytes exceeds "
                        f"the RecordIO limit of {MAX_RECORD_LENGTH} bytes")
    record_sizes = 8 + ((payload + 3) >> 2 << 2)
    starts = np.cumsum(record_sizes) - record_sizes
    out = np.zeros(int(record_sizes.sum()), dtype=np.uint8)
    words = out.view("<u4")
    words[starts >> 2] = MAGIC
    words[(starts >> 2) + 1] = payload
    positions = source.write(out, starts + 8)
    target.write(out, positions)
    return out.tobytes()
