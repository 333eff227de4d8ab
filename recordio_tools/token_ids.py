"""Whitespace tokens of a block of text lines -> vocabulary ids, vectorized with numpy.

A block is UTF-8 bytes of whole lines, each ending in b"\\n". Tokens are what `str.split()`
returns for each line (any Unicode whitespace separates them), exactly as SageMaker's
preprocessing script tokenizes. Instead of making a Python string per token, the mapper finds
token boundaries with numpy, packs each token of up to 24 bytes into three 64-bit words and
looks those up in an open-addressing table built from the vocabulary; the comparison is on
the full token bytes, so the result is exact. Longer tokens take a dictionary lookup, and a
block with characters this path does not model falls back to `str.split()` wholesale.
"""

from collections import Counter

import numpy as np

from seq2seq.constants import UNK_ID

WHITESPACE = "".join(chr(code) for code in range(0x3001) if chr(code).isspace())
_ASCII_WHITESPACE = bytes(ord(char) for char in WHITESPACE if ord(char) < 128)
_IS_WHITESPACE = np.zeros(256, dtype=bool)
_IS_WHITESPACE[list(_ASCII_WHITESPACE)] = True
# Non-ASCII whitespace by UTF-8 lead byte: {lead: (length, continuation bytes as big-endian ints)}.
_WIDE_WHITESPACE = {}
for _char in WHITESPACE:
    if ord(_char) >= 128:
        _encoded = _char.encode("utf-8")
        _length, _codes = _WIDE_WHITESPACE.get(_encoded[0], (len(_encoded), []))
        _codes.append(int.from_bytes(_encoded[1:], "big"))
        _WIDE_WHITESPACE[_encoded[0]] = (_length, _codes)

KEY_BYTES = 24                      # tokens up to this many bytes are looked up in numpy
_WORDS = KEY_BYTES // 8
_PAD = b"\0" * (KEY_BYTES + 8)
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_MULTIPLIERS = [np.uint64(m) for m in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)]
_LENGTH_MULTIPLIER = np.uint64(0x27D4EB2F165667C5)
_FINAL_MULTIPLIER = np.uint64(0xFF51AFD7ED558CCD)
_EMPTY = np.uint64((1 << 64) - 1)                # id column of a free table slot


def _whitespace_mask(block: bytes, data: np.ndarray) -> np.ndarray:
    """(n,) bool: which bytes belong to a whitespace character (ASCII or multi-byte UTF-8)."""
    mask = data <= 32
    if np.count_nonzero(data < 9) or np.count_nonzero((data - np.uint8(14)) < 14):
        mask = _IS_WHITESPACE[data]       # control bytes that are not whitespace occur
    for lead, (length, codes) in _WIDE_WHITESPACE.items():
        if bytes([lead]) in block:
            positions = np.flatnonzero(data == lead)
            positions = positions[positions + length <= len(data)]
            code = np.zeros(len(positions), dtype=np.int64)
            for offset in range(1, length):
                code = (code << 8) | data[positions + offset]
            positions = positions[np.isin(code, codes)]
            for offset in range(length):
                mask[positions + offset] = True
    return mask


def _token_words(buffer: bytes, starts: np.ndarray, lengths: np.ndarray) -> list:
    """The token bytes as `_WORDS` little-endian uint64 words each, zero beyond the token; (t,) each."""
    view = np.ndarray(shape=(len(buffer) - 7,), dtype="<u8", buffer=buffer, offset=0, strides=(1,))
    words = [view[starts] & _MASKS[np.minimum(lengths, 8)]]
    for index in range(1, _WORDS):
        word = np.zeros(len(starts), dtype=np.uint64)
        rows = np.flatnonzero(lengths > 8 * index)
        if len(rows):
            valid = np.minimum(lengths[rows] - 8 * index, 8)
            word[rows] = view[starts[rows] + 8 * index] & _MASKS[valid]
        words.append(word)
    return words


def _slots(words: list, lengths: np.ndarray, bits: int) -> np.ndarray:
    mixed = lengths.astype(np.uint64) * _LENGTH_MULTIPLIER
    for word, multiplier in zip(words, _MULTIPLIERS):
        mixed ^= word * multiplier
    mixed ^= mixed >> np.uint64(29)
    mixed *= _FINAL_MULTIPLIER
    return (mixed >> np.uint64(64 - bits)).astype(np.int64)


def _token_bounds(block: bytes):
    """Token starts (t,), ends (t,) and tokens per line (lines,) of a block."""
    data = np.frombuffer(block, dtype=np.uint8)
    in_token = ~_whitespace_mask(block, data)
    changes = np.flatnonzero(in_token[1:] != in_token[:-1]) + 1
    if len(data) and in_token[0]:
        changes = np.concatenate([[0], changes])
    starts, ends = changes[0::2], changes[1::2]     # blocks end in "\n", so every token ends
    newlines = np.flatnonzero(data == 10)
    tokens_before = np.searchsorted(starts, newlines)
    per_line = np.diff(tokens_before, prepend=0)
    return starts, ends, per_line


class TokenIdMapper:
    """Maps blocks of lines to token ids with a fixed token -> id dictionary."""

    def __init__(self, token_to_id: dict, unknown_id: int = UNK_ID):
        self._token_to_id = dict(token_to_id)
        self._unknown_id = unknown_id
        encoded = {token.encode("utf-8"): token_id for token, token_id in self._token_to_id.items()}
        self._long = {token: token_id for token, token_id in encoded.items() if len(token) > KEY_BYTES}
        short = [(token, token_id) for token, token_id in encoded.items() if len(token) <= KEY_BYTES]
        self._build_table(short)

    def _build_table(self, short: list) -> None:
        """Open addressing, linear probing; rows are [word 0, word 1, word 2, length, id]."""
        self._bits = max(4, int(2 * max(len(short), 1) - 1).bit_length() + 1)   # load factor <= 1/2
        size = 1 << self._bits
        lengths = np.array([len(token) for token, _ in short], dtype=np.int64)
        buffer = b"".join(token for token, _ in short) + _PAD
        starts = np.cumsum(lengths) - lengths
        words = _token_words(buffer, starts, lengths)
        slots = _slots(words, lengths, self._bits).tolist()
        self._table = np.zeros((size, _WORDS + 2), dtype=np.uint64)
        self._table[:, _WORDS + 1] = _EMPTY
        occupied = self._table[:, _WORDS + 1]
        for row, (slot, (_, token_id)) in enumerate(zip(slots, short)):
            while occupied[slot] != _EMPTY:
                slot = (slot + 1) & (size - 1)
            self._table[slot] = [word[row] for word in words] + [lengths[row], token_id]

    def map_block(self, block: bytes):
        """Ids of all tokens, flat (t,) int64, and tokens per line (lines,) int64."""
        starts, ends, per_line = _token_bounds(block)
        lengths = ends - starts
        ids = np.full(len(starts), self._unknown_id, dtype=np.int64)
        short = lengths <= KEY_BYTES
        rows = np.flatnonzero(short) if not short.all() else np.arange(len(starts))
        self._lookup_short(block + _PAD, starts[rows], lengths[rows], rows, ids)
        for row in np.flatnonzero(~short).tolist():
            token = block[starts[row]:ends[row]]
            ids[row] = self._long.get(token, self._unknown_id)
        return ids, per_line

    def _lookup_short(self, buffer, starts, lengths, rows, ids) -> None:
        """Set ids[rows] to the ids of the tokens at starts (k,) with lengths (k,); misses keep UNK."""
        words = _token_words(buffer, starts, lengths)
        key = words + [lengths.astype(np.uint64)]
        slots = _slots(words, lengths, self._bits)
        mask = (1 << self._bits) - 1
        pending = None                                  # None: all tokens, else indices into them
        while True:
            entries = self._table[slots]
            differs = entries[:, 0] ^ (key[0] if pending is None else key[0][pending])
            for column in range(1, _WORDS + 1):
                differs |= entries[:, column] ^ (key[column] if pending is None else key[column][pending])
            found = entries[:, _WORDS + 1]
            match = differs == 0
            targets = rows if pending is None else rows[pending]
            ids[targets[match]] = found[match].astype(np.int64)
            probe_on = np.flatnonzero(~match & (found != _EMPTY))
            if not len(probe_on):
                return
            pending = probe_on if pending is None else pending[probe_on]
            slots = (slots[probe_on] + 1) & mask

    def map_lines_slowly(self, block: bytes):
        """Reference implementation with `str.split()`; same result as `map_block`."""
        get, unknown = self._token_to_id.get, self._unknown_id
        ids, per_line = [], []
        for line in block.decode("utf-8").split("\n")[:-1]:
            tokens = line.split()
            per_line.append(len(tokens))
            ids.extend(get(token, unknown) for token in tokens)
        return np.array(ids, dtype=np.int64), np.array(per_line, dtype=np.int64)


def count_tokens(block: bytes, counts: Counter) -> None:
    """Add the whitespace tokens of a UTF-8 block to `counts`."""
    counts.update(block.decode("utf-8").split())
