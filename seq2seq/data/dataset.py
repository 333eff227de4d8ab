"""Sentence pairs in memory: read through the codec, validated against the vocabularies, truncated."""

from dataclasses import dataclass, field
from typing import Iterable, List, Tuple

import numpy as np

from ..errors import UserError


@dataclass
class ParallelData:
    """Token-id sequences without <s>/</s>. sources[i], targets[i]: int32 arrays."""

    sources: List[np.ndarray] = field(default_factory=list)
    targets: List[np.ndarray] = field(default_factory=list)
    num_truncated: int = 0
    num_skipped_empty: int = 0

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def source_lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.sources), dtype=np.int64, count=len(self.sources))

    @property
    def target_lengths(self) -> np.ndarray:
        return np.fromiter((len(t) for t in self.targets), dtype=np.int64, count=len(self.targets))


def _check_ids(ids: np.ndarray, vocab_size: int, side: str, where: str) -> None:
    if ids.size and int(ids.max()) >= vocab_size:
        bad = int(ids.max())
        raise UserError(f"{where}: {side} token id {bad} is out of range for the {side} vocabulary of "
                        f"{vocab_size} entries (ids must be < {vocab_size}); were the records encoded with "
                        f"a different vocab.{'src' if side == 'source' else 'trg'}.json?")


def read_parallel_data(named_pair_iterators: Iterable[Tuple[str, Iterable]], source_vocab_size: int,
                       target_vocab_size: int, max_source_len: int, max_target_len: int) -> ParallelData:
    """Collect pairs from (name, iterator of (source_ids, target_ids)) streams.

    Ids are checked against the vocabulary sizes (UserError naming file and record), pairs with an empty side are
    skipped and counted, longer sequences are truncated to `max_source_len` / `max_target_len` and counted.
    """
    data = ParallelData()
    for name, pairs in named_pair_iterators:
        for record, (source, target) in enumerate(pairs):
            where = f"{name}, record {record}"
            _check_ids(source, source_vocab_size, "source", where)
            _check_ids(target, target_vocab_size, "target", where)
            if len(source) == 0 or len(target) == 0:
                data.num_skipped_empty += 1
                continue
            if len(source) > max_source_len or len(target) > max_target_len:
                data.num_truncated += 1
            data.sources.append(np.asarray(source[:max_source_len], dtype=np.int32))
            data.targets.append(np.asarray(target[:max_target_len], dtype=np.int32))
    return data
