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
_LOW_56 = np.uint64((1 << 56) - 1)
_LONG_MARK = np.uint64(0xFF << 56)
_FREE = np.uint64(0)                             # key of a free table slot (no token has key 0)


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


def _token_keys(buffer: bytes, starts: np.ndarray, lengths: np.ndarray):
    """64-bit keys of tokens (t,), plus the words of the tokens longer than 7 bytes.

    A token of 1..7 bytes has the exact key `bytes | length << 56`. A longer one has a hash of
    its three words and length with the top byte 0xFF, so it never equals a short key; a
    matching hash key is confirmed by comparing the words and the length. Returns (keys, long_rows,
    long_words) with long_words = [word 0, word 1, word 2, length], each (len(long_rows),).
    """
    view = np.ndarray(shape=(len(buffer) - 7,), dtype="<u8", buffer=buffer, offset=0, strides=(1,))
    keys = (view[starts] & _MASKS[np.minimum(lengths, 7)]) | (lengths.astype(np.uint64) << np.uint64(56))
    long_rows = np.flatnonzero(lengths > 7)
    long_words = _token_words(buffer, starts[long_rows], lengths[long_rows])
    long_words.append(lengths[long_rows].astype(np.uint64))          # the length is compared too
    if len(long_rows):
        mixed = lengths[long_rows].astype(np.uint64) * _LENGTH_MULTIPLIER
        for word, multiplier in zip(long_words[:_WORDS], _MULTIPLIERS):
            mixed ^= word * multiplier
        mixed ^= mixed >> np.uint64(31)
        keys[long_rows] = (mixed & _LOW_56) | _LONG_MARK
    return keys, long_rows, long_words


def _slots(keys: np.ndarray, bits: int) -> np.ndarray:
    mixed = keys * _MULTIPLIERS[0]
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


def _encode_tokens(tokens: list):
    """UTF-8 of all tokens concatenated, with each token's start (n,) and byte length (n,)."""
    joined = "\n".join(tokens)
    if joined.count("\n") == max(len(tokens) - 1, 0):     # no token holds a newline itself
        buffer = joined.encode("utf-8")
        ends = np.append(np.flatnonzero(np.frombuffer(buffer, dtype=np.uint8) == 10), len(buffer))
        starts = np.concatenate([[0], ends[:-1] + 1]) if len(tokens) else np.zeros(0, dtype=np.int64)
        return buffer, starts.astype(np.int64), (ends[:len(tokens)] - starts).astype(np.int64)
    encoded = [token.encode("utf-8") for token in tokens]
    lengths = np.array([len(token) for token in encoded], dtype=np.int64)
    return b"".join(encoded), np.cumsum(lengths) - lengths, lengths


class TokenIdMapper:
    """Maps blocks of lines to token ids with a fixed token -> id dictionary."""

    def __init__(self, token_to_id: dict, unknown_id: int = UNK_ID):
        self._token_to_id = dict(token_to_id)
        self._unknown_id = unknown_id
        buffer, starts, lengths = _encode_tokens(list(self._token_to_id))
        ids = np.fromiter(self._token_to_id.values(), dtype=np.int64, count=len(self._token_to_id))
        long_rows = np.flatnonzero(lengths > KEY_BYTES).tolist()
        self._long = {buffer[starts[row]:starts[row] + lengths[row]]: int(ids[row]) for row in long_rows}
        short = np.flatnonzero(lengths <= KEY_BYTES)
        self._build_table(buffer + _PAD, starts[short], lengths[short], ids[short])

    def _build_table(self, buffer: bytes, starts, lengths, ids) -> None:
        """Open addressing with linear probing over the tokens' 64-bit keys (table load <= 1/2)."""
        self._bits = max(4, int(2 * max(len(ids), 1) - 1).bit_length() + 1)
        size = 1 << self._bits
        keys, long_rows, long_words = _token_keys(buffer, starts, lengths)
        self._keys = np.zeros(size, dtype=np.uint64)
        self._ids = np.zeros(size, dtype=np.int64)
        self._long_words = np.zeros((size, _WORDS + 1), dtype=np.uint64)  # words + length, long tokens
        words = np.zeros((len(ids), _WORDS + 1), dtype=np.uint64)
        for column, word in enumerate(long_words):
            words[long_rows, column] = word
        pending, slots = np.arange(len(ids)), _slots(keys, self._bits)
        while len(pending):
            # All tokens at once: a token takes its slot if the slot is free and no earlier token
            # wants it this round; the others move one slot on.
            free = self._keys[slots] == _FREE
            _, first = np.unique(np.where(free, slots, -1), return_index=True)
            placed = np.zeros(len(pending), dtype=bool)
            placed[first] = True
            placed &= free
            chosen, rows = slots[placed], pending[placed]
            self._keys[chosen], self._ids[chosen], self._long_words[chosen] = keys[rows], ids[rows], words[rows]
            pending, slots = pending[~placed], (slots[~placed] + 1) & (size - 1)

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
        keys, long_rows, long_words = _token_keys(buffer, starts, lengths)
        long_index = None
        if len(long_rows):
            long_index = np.full(len(keys), -1, dtype=np.int64)
            long_index[long_rows] = np.arange(len(long_rows))
        slots = _slots(keys, self._bits)
        pending = np.arange(len(keys))
        while len(pending):
            found = self._keys[slots]
            match = found == keys[pending]
            if long_index is not None:
                self._confirm_long(match, slots, long_index[pending], long_words)
            hits = np.flatnonzero(match)
            ids[rows[pending[hits]]] = self._ids[slots[hits]]
            probe_on = np.flatnonzero(~match & (found != _FREE))
            pending, slots = pending[probe_on], (slots[probe_on] + 1) & ((1 << self._bits) - 1)

    def _confirm_long(self, match, slots, long_index, long_words) -> None:
        """Clear match[i] where a long token's hash key matched but its bytes differ."""
        check = np.flatnonzero(match & (long_index >= 0))
        if not len(check):
            return
        stored = self._long_words[slots[check]]
        same = np.ones(len(check), dtype=bool)
        for column, word in enumerate(long_words):
            same &= stored[:, column] == word[long_index[check]]
        match[check[~same]] = False

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
