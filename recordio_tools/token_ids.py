"""Whitespace tokens of a block of text lines -> vocabulary ids, vectorized with numpy.

A block is UTF-8 bytes of whole lines, each ending in b"\\n". Tokens are what `str.split()`
returns for each line (any Unicode whitespace separates them), exactly as SageMaker's
preprocessing script tokenizes. Instead of making a Python string per token, the mapper finds
token boundaries with numpy and looks every token up in an open-addressing table built from the
vocabulary. A token of up to 23 bytes is keyed exactly by three 64-bit words: its bytes, zero
padded, with its length in the top byte of the last word it reaches (see `_token_keys`), so a
table hit is a true match. Longer tokens, and the rare ones whose bytes could read as a length,
go through a dictionary of bytes. `map_lines_slowly` is the plain reference the tests compare with.
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

KEY_BYTES = 23                      # longer tokens are looked up in a dictionary
_PAD = b"\0" * 32
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_MULTIPLIERS = [np.uint64(m) for m in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)]
_FINAL_MULTIPLIER = np.uint64(0xFF51AFD7ED558CCD)
_TOP = np.uint64(56)
_FREE = np.uint64(0)                # word 0 of a free table slot (no keyed token has word 0 == 0)


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


def _token_keys(buffer: bytes, starts: np.ndarray, lengths: np.ndarray):
    """Exact keys of tokens: (key0, key1, key2) uint64 (t,) each, and `keyed` bool (t,).

    key i holds bytes 8i..8i+7 of the token, zero past its end. The length goes into the top
    byte of the last key the token reaches: key0 for 1..7 bytes, key1 for 8..15, key2 for
    16..23; keys past that are zero. A token of 8 or more bytes whose byte 7 is below 8, or of
    16 or more whose byte 15 is below 16, could be confused with a shorter one, so it is not
    keyed (nor is any token over 23 bytes); those take the dictionary.
    """
    view = np.ndarray(shape=(len(buffer) - 7,), dtype="<u8", buffer=buffer, offset=0, strides=(1,))
    length_bytes = lengths.astype(np.uint64) << _TOP
    key0 = view[starts] & _MASKS[np.minimum(lengths, 8)]
    key0 |= np.where(lengths <= 7, length_bytes, _FREE)
    key1 = view[starts + 8] & _MASKS[np.clip(lengths - 8, 0, 8)]          # zero below 9 bytes
    key1 |= np.where((lengths >= 8) & (lengths <= 15), length_bytes, _FREE)
    key2 = np.zeros_like(key0)
    keyed = (lengths <= KEY_BYTES) & ((lengths <= 7) | ((key0 >> _TOP) >= 8))
    upper = np.flatnonzero(lengths >= 16)
    if len(upper):
        key2[upper] = (view[starts[upper] + 16] & _MASKS[np.clip(lengths[upper] - 16, 0, 8)]) | length_bytes[upper]
        keyed[upper] &= (key1[upper] >> _TOP) >= 16
    return key0, key1, key2, keyed


def _slots(keys, bits: int) -> np.ndarray:
    """Table slot of each token from its three keys: (t,) int64 in 0..2**bits-1."""
    mixed = keys[0] * _MULTIPLIERS[0]
    for key, multiplier in zip(keys[1:], _MULTIPLIERS[1:]):
        mixed ^= key * multiplier
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
        *keys, keyed = _token_keys(buffer + _PAD, starts, lengths)
        self._unkeyed = {buffer[starts[row]:starts[row] + lengths[row]]: int(ids[row])
                         for row in np.flatnonzero(~keyed).tolist()}
        rows = np.flatnonzero(keyed)
        self._build_table([key[rows] for key in keys], ids[rows])

    def _build_table(self, keys: list, ids: np.ndarray) -> None:
        """Open addressing with linear probing (load <= 1/2); slot arrays of the keys and the ids."""
        self._bits = max(4, int(2 * len(ids) - 1).bit_length())
        size = 1 << self._bits
        self._keys = [np.zeros(size, dtype=np.uint64) for _ in keys]
        self._ids = np.zeros(size, dtype=np.int64)
        pending, slots = np.arange(len(ids)), _slots(keys, self._bits)
        while len(pending):
            # All tokens at once: a token takes its slot if the slot is free and no earlier token
            # wants it this round; the others move one slot on.
            free = self._keys[0][slots] == _FREE
            _, first = np.unique(np.where(free, slots, -1), return_index=True)
            placed = np.zeros(len(pending), dtype=bool)
            placed[first] = True
            placed &= free
            chosen, rows = slots[placed], pending[placed]
            for table, key in zip(self._keys, keys):
                table[chosen] = key[rows]
            self._ids[chosen] = ids[rows]
            pending, slots = pending[~placed], (slots[~placed] + 1) & (size - 1)

    def map_block(self, block: bytes):
        """Ids of all tokens, flat (t,) int64, and tokens per line (lines,) int64."""
        starts, ends, per_line = _token_bounds(block)
        *keys, keyed = _token_keys(block + _PAD, starts, ends - starts)
        ids = np.full(len(starts), self._unknown_id, dtype=np.int64)
        if keyed.all():
            self._lookup(keys, np.arange(len(starts)), ids)
        else:
            rows = np.flatnonzero(keyed)
            self._lookup([key[rows] for key in keys], rows, ids)
            for row in np.flatnonzero(~keyed).tolist():
                ids[row] = self._unkeyed.get(block[starts[row]:ends[row]], self._unknown_id)
        return ids, per_line

    def _lookup(self, keys: list, rows: np.ndarray, ids: np.ndarray) -> None:
        """Set ids[rows] to the ids of the tokens with these keys ((k,) each); misses keep UNK.

        Equal key0 settles tokens of up to 7 bytes; longer ones (key1 != 0) compare key1, and
        those of 16 bytes or more (key2 != 0) key2 as well.
        """
        slots = _slots(keys, self._bits)
        pending = np.arange(len(rows))
        while len(pending):
            found = self._keys[0][slots]
            match = found == keys[0][pending]
            for level in (1, 2):
                check = np.flatnonzero(match & (keys[level][pending] != _FREE))
                if len(check):
                    match[check] = self._keys[level][slots[check]] == keys[level][pending[check]]
            hits = np.flatnonzero(match)
            ids[rows[pending[hits]]] = self._ids[slots[hits]]
            probe_on = np.flatnonzero(~match & (found != _FREE))
            pending, slots = pending[probe_on], (slots[probe_on] + 1) & ((1 << self._bits) - 1)

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
