"""Bucketed, shuffled, resumable batches of sentence pairs, shardable across workers."""

from dataclasses import dataclass
from typing import Iterator, List, Sequence

import numpy as np

from ..constants import BOS_ID, EOS_ID, PAD_ID
from .batch import Batch
from .bucketing import Bucket, assign_bucket
from .dataset import ParallelData


@dataclass(frozen=True)
class IteratorPosition:
    """Where an epoch stands: the next batch to yield (0-based) within `epoch`; `short_only`: the epoch is one
    pass over the short buckets only (the first phase of a length curriculum), not over all buckets."""

    epoch: int = 0
    batch_index: int = 0
    short_only: bool = False


def make_batch(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray], bucket: Bucket) -> Batch:
    """Pad to the bucket's shape: source `(n, bucket_src)`, target_input/labels `(n, bucket_trg)`."""
    size = len(sources)
    source = np.full((size, bucket[0]), PAD_ID, dtype=np.float32)
    target_input = np.full((size, bucket[1]), PAD_ID, dtype=np.float32)
    labels = np.full((size, bucket[1]), PAD_ID, dtype=np.float32)
    for row, (src, trg) in enumerate(zip(sources, targets)):
        source[row, :len(src)] = src
        target_input[row, 0] = BOS_ID
        target_input[row, 1:len(trg) + 1] = trg
        labels[row, :len(trg)] = trg
        labels[row, len(trg)] = EOS_ID
    lengths = np.array([len(s) for s in sources], dtype=np.float32)
    return Batch(source, lengths, target_input, labels)


class BucketBatchIterator:
    """Groups pairs by bucket and cuts each bucket into batches of `batch_size` sentences.

    The batch order of an epoch is a pure function of (seed, epoch, short_only), so a position (epoch, batch_index,
    short_only) is all a checkpoint needs to resume. With several workers, every worker computes the same global
    order and takes batches `rank, rank + num_workers, ...`, truncated so that every worker runs the same number
    of batches.

    `short_buckets` (indices into `buckets`, see bucketing.buckets_within): the buckets of a short-only epoch, which
    cuts and shuffles the pairs of those buckets only, exactly as a full epoch does all of them (a full epoch's
    order does not depend on them).
    """

    def __init__(self, data: ParallelData, buckets: List[Bucket], batch_size: int, seed: int, shuffle: bool = True,
                 rank: int = 0, num_workers: int = 1, min_batch_size: int = 1, short_buckets: Sequence[int] = ()):
        self.data = data
        self.buckets = buckets
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.num_workers = num_workers
        self.min_batch_size = min_batch_size
        self.max_batches_per_epoch = None  # set when several hosts agree on a common count
        self.max_short_batches_per_epoch = None  # the same for short-only epochs
        self.short_buckets = frozenset(short_buckets)
        self.bucket_members = self._assign(data, buckets)

    @staticmethod
    def _assign(data: ParallelData, buckets: List[Bucket]) -> List[np.ndarray]:
        members: List[list] = [[] for _ in buckets]
        for index, (source, target) in enumerate(zip(data.sources, data.targets)):
            bucket = assign_bucket(buckets, len(source), len(target) + 1)
            if bucket is not None:
                members[bucket].append(index)
        return [np.array(m, dtype=np.int64) for m in members]

    def _global_batches(self, epoch: int, short_only: bool = False) -> List[tuple]:
        rng = np.random.RandomState((self.seed * 1000003 + epoch) % (2 ** 32))
        batches = []
        for bucket_index, members in enumerate(self.bucket_members):
            if short_only and bucket_index not in self.short_buckets:
                continue
            order = rng.permutation(members) if self.shuffle else members
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                if len(chunk) >= self.min_batch_size:
                    batches.append((bucket_index, chunk))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _worker_batches(self, epoch: int, short_only: bool = False) -> List[tuple]:
        batches = self._global_batches(epoch, short_only)
        per_worker = len(batches) // self.num_workers
        agreed = self.max_short_batches_per_epoch if short_only else self.max_batches_per_epoch
        if agreed is not None:
            per_worker = min(per_worker, agreed)
        return batches[self.rank::self.num_workers][:per_worker]

    def num_batches(self, epoch: int = 0, short_only: bool = False) -> int:
        """Batches this worker runs per epoch, or per short-only epoch (the same for every epoch and worker)."""
        return len(self._worker_batches(epoch, short_only))

    def num_short_pairs(self) -> int:
        """Pairs in the short buckets."""
        return sum(len(self.bucket_members[index]) for index in self.short_buckets)

    def epoch(self, position: IteratorPosition) -> Iterator[Batch]:
        """Batches of `position.epoch` (a short-only epoch when `position.short_only`) from `position.batch_index`."""
        for bucket_index, indices in self._worker_batches(position.epoch, position.short_only)[position.batch_index:]:
            yield make_batch([self.data.sources[i] for i in indices], [self.data.targets[i] for i in indices],
                             self.buckets[bucket_index])

    def bucket_table(self) -> str:
        """One line per non-empty bucket: its shape and how many pairs it holds."""
        return ", ".join(f"{b[0]}x{b[1]}:{len(m)}" for b, m in zip(self.buckets, self.bucket_members) if len(m))
