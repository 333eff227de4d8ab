"""Vocabularies: the `vocab.src.json` / `vocab.trg.json` files of the `vocab` channel.

A vocabulary maps whitespace tokens to dense ids 0..n-1. The first four ids are reserved:
`<pad>`=0, `<unk>`=1, `<s>`=2, `</s>`=3. Built vocabularies follow the rules of SageMaker's
preprocessing script: tokens with count >= min_count, sorted by descending count with equal
counts in reverse lexical order, at most `max_size` of them after the reserved symbols.
"""

import json
import os
from collections import Counter
from typing import Iterable, Mapping, Sequence

import numpy as np

from seq2seq.atomic_write import write_text
from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID, RESERVED_SYMBOLS, UNK_ID
from seq2seq.errors import UserError

DEFAULT_MIN_COUNT = 1
DEFAULT_MAX_SIZE = 50000


class Vocabulary:
    """A validated token <-> id mapping with the reserved symbols at ids 0..3."""

    def __init__(self, token_to_id: Mapping[str, int], source: str = "vocabulary"):
        """`source` names where the mapping came from (a file name) in error messages."""
        self._token_to_id = dict(token_to_id)
        self.id_to_token = _dense_inverse(self._token_to_id, source)
        for expected_id, symbol in enumerate(RESERVED_SYMBOLS):
            found = self._token_to_id.get(symbol)
            if found != expected_id:
                raise UserError(f"{source}: reserved symbol {symbol!r} must have id {expected_id}, "
                                f"found {'no entry' if found is None else found}")

    @classmethod
    def load(cls, path) -> "Vocabulary":
        """Read a vocab JSON file (a flat object token -> id); UserError naming the file if invalid."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as handle:
                mapping = json.load(handle)
        except FileNotFoundError:
            raise UserError(f"vocabulary file {path} does not exist") from None
        except UnicodeDecodeError as error:
            raise UserError(f"vocabulary file {path} is not UTF-8 (byte offset {error.start})") from None
        except json.JSONDecodeError as error:
            raise UserError(f"vocabulary file {path} is not valid JSON: {error.msg} "
                            f"at line {error.lineno} column {error.colno}") from None
        if not isinstance(mapping, dict):
            raise UserError(f"vocabulary file {path} must hold a JSON object token -> id, "
                            f"found {type(mapping).__name__}")
        return cls(mapping, source=path)

    def save(self, path) -> None:
        """Write the vocab as UTF-8 JSON (indent 4, non-ASCII kept), atomically."""
        text = json.dumps(self._token_to_id, indent=4, ensure_ascii=False)
        write_text(path, text)

    def __len__(self) -> int:
        return len(self.id_to_token)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.id_to_token == other.id_to_token

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def token_to_id(self) -> dict:
        """A copy of the token -> id mapping."""
        return dict(self._token_to_id)

    def get(self, token: str) -> int:
        """The id of `token`, UNK_ID when it is out of vocabulary."""
        return self._token_to_id.get(token, UNK_ID)

    def encode(self, tokens: Sequence[str]) -> list:
        """Token ids of `tokens` (length len(tokens)); out-of-vocabulary tokens give UNK_ID."""
        get = self._token_to_id.get
        return [get(token, UNK_ID) for token in tokens]

    def decode(self, ids, strip_special: bool = True) -> list:
        """Tokens of `ids`; with strip_special, <pad>, <s> and </s> are left out (<unk> is kept)."""
        tokens = []
        size = len(self.id_to_token)
        for position, token_id in enumerate(ids):
            token_id = int(token_id)
            if not 0 <= token_id < size:
                raise UserError(f"token id {token_id} at position {position} is outside the "
                                f"vocabulary of {size} tokens")
            if strip_special and token_id in (PAD_ID, BOS_ID, EOS_ID):
                continue
            tokens.append(self.id_to_token[token_id])
        return tokens


def _dense_inverse(token_to_id: dict, source: str) -> list:
    """id -> token list; UserError unless the ids are exactly 0..n-1, each used once."""
    tokens, ids = list(token_to_id), list(token_to_id.values())
    if set(map(type, tokens)) <= {str} and set(map(type, ids)) <= {int}:
        order = np.argsort(np.array(ids, dtype=np.int64), kind="stable")
        if np.array_equal(np.array(ids, dtype=np.int64)[order], np.arange(len(ids))):
            return [tokens[index] for index in order.tolist()]
    return _explain_not_dense(token_to_id, source)


def _explain_not_dense(token_to_id: dict, source: str) -> list:
    """The slow check, item by item, raising UserError at the first problem."""
    id_to_token = [None] * len(token_to_id)
    for token, token_id in token_to_id.items():
        if not isinstance(token, str):
            raise UserError(f"{source}: token {token!r} is not a string")
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise UserError(f"{source}: id of token {token!r} must be an integer, found {token_id!r}")
        if not 0 <= token_id < len(id_to_token):
            raise UserError(f"{source}: id {token_id} of token {token!r} is outside 0..{len(id_to_token) - 1};"
                            " ids must be dense")
        if id_to_token[token_id] is not None:
            raise UserError(f"{source}: id {token_id} is used by both {id_to_token[token_id]!r} "
                            f"and {token!r}")
        id_to_token[token_id] = token
    return id_to_token


def vocabulary_from_counts(counts: Mapping[str, int], min_count: int = DEFAULT_MIN_COUNT,
                           max_size: int = DEFAULT_MAX_SIZE) -> Vocabulary:
    """The vocabulary of `counts` (token -> occurrences) under SageMaker's rules.

    Tokens with count >= min_count, by descending count, equal counts in reverse lexical order
    (the (count, token) pairs sorted in reverse), at most max_size of them (None: no limit).
    Reserved symbols occurring in the data keep their reserved ids.
    """
    _check_limits(min_count, max_size)
    counts = dict(counts)
    for symbol in RESERVED_SYMBOLS:
        counts.pop(symbol, None)
    if min_count > 1:
        counts = {token: count for token, count in counts.items() if count >= min_count}
    ranked = sorted(zip(counts.values(), counts.keys()), reverse=True)
    if max_size is not None:
        ranked = ranked[:max_size]
    tokens = list(RESERVED_SYMBOLS) + [token for _, token in ranked]
    return Vocabulary(dict(zip(tokens, range(len(tokens)))))


def build_vocabulary(token_lists: Iterable[Sequence[str]], min_count: int = DEFAULT_MIN_COUNT,
                     max_size: int = DEFAULT_MAX_SIZE) -> Vocabulary:
    """Count the tokens of `token_lists` (one list per sentence) and build the vocabulary."""
    counts = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    return vocabulary_from_counts(counts, min_count, max_size)


def _check_limits(min_count, max_size) -> None:
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise UserError(f"min_count must be an integer >= 1, got {min_count!r}")
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                 or max_size < 0):
        raise UserError(f"max_size must be an integer >= 0, got {max_size!r}")

