"""The length curriculum (`curriculum=length`): which batches the training loop feeds, short buckets first.

Phase "short" feeds only the buckets whose pairs have at most `curriculum_short_length` tokens on each side
(bucketing.buckets_within); phase "all" feeds every bucket, as a job without a curriculum does from the start.

- An epoch of the short phase is one pass over the short buckets (their pairs cut into batches and shuffled by
  (seed, epoch) exactly like a full epoch). Epochs are counted across both phases: `state.epoch`,
  `max_num_epochs`, `min_num_epochs` and the epoch in the metric lines include the short-phase epochs.
- With `curriculum_num_epochs` = K the short phase is epochs 0 .. K-1 and epoch K is the first over all buckets.
- Otherwise the switch comes after update round(curriculum_fraction x max_num_batches) (at least 1): the short
  epoch in progress is left there and the next epoch, over all buckets, starts with the next update.

The phase is part of the training state (`TrainingState.curriculum_phase`), beside the iterator position, so a
resumed job feeds the same batches as an uninterrupted one. Every worker of a multi-host job runs the same
number of batches per short epoch (the hosts agree on it as on the full count) and counts the same updates, so
all switch at the same update.
"""

from typing import List, Optional

from ..data.batch_iterator import BucketBatchIterator, IteratorPosition
from ..data.bucketing import Bucket, buckets_within
from ..errors import UserError

SHORT = "short"
ALL = "all"


class Curriculum:
    """The phase rules of one job. `active` False (curriculum=none): always phase "all", never a switch."""

    def __init__(self, active: bool, num_epochs: Optional[int] = None, switch_update: Optional[int] = None):
        self.active = active
        self.num_epochs = num_epochs
        self.switch_update = switch_update

    @classmethod
    def from_hyperparameters(cls, hp) -> "Curriculum":
        if hp.curriculum != "length":
            return cls(False)
        if hp.curriculum_num_epochs is not None:
            return cls(True, num_epochs=hp.curriculum_num_epochs)
        return cls(True, switch_update=max(1, int(round(hp.curriculum_fraction * hp.max_num_batches))))

    @property
    def initial_phase(self) -> str:
        return SHORT if self.active else ALL

    def describe_switch(self) -> str:
        """When the short phase ends, for the log: "epoch K" or "update U"."""
        return f"epoch {self.num_epochs}" if self.num_epochs is not None else f"update {self.switch_update}"

    def switch_due(self, state) -> bool:
        """True when `state` is in the short phase and the short phase is over (checked after every batch and
        before every epoch)."""
        if state.curriculum_phase != SHORT:
            return False
        if self.num_epochs is not None:
            return state.epoch >= self.num_epochs
        return state.num_updates >= self.switch_update

    def advance(self, state) -> bool:
        """Switch `state` to phase "all" when due; a short epoch left part-way ends there (the next epoch starts).
        Returns True when it switched."""
        if not self.switch_due(state):
            return False
        state.curriculum_phase = ALL
        if state.batch_index > 0:
            state.epoch += 1
            state.batch_index = 0
        return True

    @staticmethod
    def position(state) -> IteratorPosition:
        """The iterator position of the next batch of `state`."""
        return IteratorPosition(state.epoch, state.batch_index, short_only=state.curriculum_phase == SHORT)


def short_bucket_indices(hp, buckets: List[Bucket]) -> List[int]:
    """The short buckets of `curriculum=length` (none without a curriculum); UserError at the job's gate when no
    bucket qualifies."""
    if hp.curriculum != "length":
        return []
    indices = buckets_within(buckets, hp.curriculum_short_length)
    if not indices:
        smallest = buckets[0]
        raise UserError(f"hyperparameter 'curriculum_short_length' = {hp.curriculum_short_length}: no bucket holds "
                        f"only pairs that short (the smallest bucket is {smallest[0]} source x {smallest[1] - 1} "
                        f"target tokens; bucket_width = {hp.bucket_width}); raise curriculum_short_length to at least "
                        f"{max(smallest[0], smallest[1] - 1)}")
    return indices


def check_short_phase(hp, train_iter: BucketBatchIterator, num_workers: int) -> None:
    """UserError at the job's gate when the short buckets make no batch (the short phase could never update)."""
    if hp.curriculum != "length" or train_iter.num_batches(short_only=True) > 0:
        return
    shapes = ", ".join(f"{train_iter.buckets[index][0]}x{train_iter.buckets[index][1]}"
                       for index in sorted(train_iter.short_buckets))
    raise UserError(f"hyperparameter 'curriculum_short_length' = {hp.curriculum_short_length}: the short buckets "
                    f"({shapes}) hold {train_iter.num_short_pairs()} training pairs: too few for one batch on each of "
                    f"{num_workers} worker(s); raise curriculum_short_length")
