"""The lexical shortlist at decoding time: which target ids the output layer scores for a batch.

A batch's candidates are the union of the table rows of its source ids (each source id's `k` most probable
translations, `seq2seq.lexicon`), the `frequent` most frequent target ids of the training data and the
reserved ids, topped up with the next most frequent ids to one of a few fixed sizes (`CANDIDATE_SIZES`), so
that the step program exists in a few shapes only. When the union would not be smaller than the vocabulary's
`FULL_VOCABULARY_SHARE`, the whole vocabulary is scored instead.
"""

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..constants import PAD_ID
from .search import RESERVED_IDS

CANDIDATE_SIZES = tuple(int(256 * 2 ** (i / 2)) // 64 * 64 for i in range(20))   # 256, 320, 512, 704, 1024, ...
FULL_VOCABULARY_SHARE = 0.7


@dataclass(frozen=True)
class Shortlist:
    """translations `(source_vocab, k_stored)` int32 target ids per source id, best first (PAD_ID fills short
    rows); by_frequency `(target_vocab,)` int32 every target id, most frequent in the training data first.
    `k` and `frequent` are the counts used at decoding (at most what is stored)."""

    translations: np.ndarray
    by_frequency: np.ndarray
    k: int
    frequent: int

    def with_sizes(self, k: Optional[int] = None, frequent: Optional[int] = None) -> "Shortlist":
        """The same table used with other counts (k at most the stored columns)."""
        k = self.k if k is None else min(k, self.translations.shape[1])
        return Shortlist(self.translations, self.by_frequency, k, self.frequent if frequent is None else frequent)

    def union(self, sources: List[List[int]]) -> np.ndarray:
        """Sorted unique target ids a batch may emit: table rows of its source ids, frequent ids, reserved ids."""
        source_ids = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in sources] or [[]]))
        source_ids = source_ids[source_ids < len(self.translations)].astype(np.int64)
        parts = [np.asarray(RESERVED_IDS, dtype=np.int64), self.by_frequency[:self.frequent].astype(np.int64),
                 self.translations[source_ids, :self.k].reshape(-1).astype(np.int64)]
        return np.unique(np.concatenate(parts))

    def candidates(self, sources: List[List[int]]) -> Optional[np.ndarray]:
        """The batch's candidate ids `(size,)` int64 (reserved ids first, then ascending), `size` one of
        CANDIDATE_SIZES; None when the whole vocabulary should be scored."""
        vocab_size = len(self.by_frequency)
        chosen = self.union(sources)
        size = next((s for s in CANDIDATE_SIZES if s >= len(chosen)), vocab_size)
        if size >= FULL_VOCABULARY_SHARE * vocab_size:
            return None
        extra = self.by_frequency[~np.isin(self.by_frequency, chosen)][:size - len(chosen)]
        return np.sort(np.concatenate([chosen, extra.astype(np.int64)]))

    def coverage(self, sources: List[List[int]], outputs: List[List[int]],
                 batches: Optional[List[List[int]]] = None) -> float:
        """Share of the tokens of `outputs` (e.g. the full search's translations of `sources`) that the candidates
        scored when decoding them hold: each batch's `candidates` (padded as decoding pads them; every token when
        the whole vocabulary is scored). `batches`: lists of indices into `sources`, decoded together (e.g.
        `translator.length_sorted_batches`); None decodes each sentence alone, as one-sentence requests are.
        1.0 when there are no tokens."""
        held = total = 0
        for batch in batches if batches is not None else [[i] for i in range(len(sources))]:
            candidates = self.candidates([sources[i] for i in batch])
            for i in batch:
                emitted = np.asarray(outputs[i], dtype=np.int64)
                held += len(emitted) if candidates is None else int(np.isin(emitted, candidates).sum())
                total += len(emitted)
        return held / total if total else 1.0


def target_frequency_order(targets, target_vocab_size: int) -> np.ndarray:
    """Every target id `(target_vocab_size,)`, most frequent in `targets` (id arrays) first; ties by id."""
    counts = np.bincount(np.concatenate([np.asarray(t, dtype=np.int64) for t in targets] or [[PAD_ID]]),
                         minlength=target_vocab_size)[:target_vocab_size]
    return np.lexsort((np.arange(target_vocab_size), -counts)).astype(np.int32)
