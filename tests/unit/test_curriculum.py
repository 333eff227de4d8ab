"""The length curriculum's pieces: short buckets, short-only epochs of the iterator, the phase rules, the gate."""

from types import SimpleNamespace

import numpy as np
import pytest

from seq2seq.data.batch_iterator import BucketBatchIterator, IteratorPosition
from seq2seq.data.bucketing import assign_bucket, buckets_within, define_parallel_buckets
from seq2seq.errors import UserError
from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.training.curriculum import ALL, SHORT, Curriculum, check_short_phase, short_bucket_indices
from seq2seq.training.training_state import TrainingState
from tests.unit.test_batch_iterator import numbered_data, pair_indices

BUCKETS = define_parallel_buckets(15, 16, 4, 1.0)       # (4, 4), (8, 8), (12, 12), (15, 16)
SHORT_LENGTH = 8


def iterator(short_length=SHORT_LENGTH, **kwargs):
    return BucketBatchIterator(numbered_data(), BUCKETS, 8, 5, short_buckets=buckets_within(BUCKETS, short_length),
                               **kwargs)


def short_pairs(data, short_length=SHORT_LENGTH):
    """Pairs whose bucket is within the short length (the pairs a short epoch must feed)."""
    short = set(buckets_within(BUCKETS, short_length))
    return {i for i, (s, t) in enumerate(zip(data.sources, data.targets))
            if assign_bucket(BUCKETS, len(s), len(t) + 1) in short}


def todays_global_batches(iterator, epoch):
    """The batch order of an epoch as the iterator computed it before short-only epochs existed."""
    rng = np.random.RandomState((iterator.seed * 1000003 + epoch) % (2 ** 32))
    batches = []
    for bucket_index, members in enumerate(iterator.bucket_members):
        order = rng.permutation(members)
        for start in range(0, len(order), iterator.batch_size):
            chunk = order[start:start + iterator.batch_size]
            if len(chunk) >= iterator.min_batch_size:
                batches.append((bucket_index, chunk))
    return [batches[i] for i in rng.permutation(len(batches))]


def test_buckets_within_count_the_target_end_position():
    assert BUCKETS == [(4, 4), (8, 8), (12, 12), (15, 16)]
    assert buckets_within(BUCKETS, 8) == [0, 1]        # (8, 8) holds sources of 8 and targets of 7 tokens
    assert buckets_within(BUCKETS, 7) == [0]
    assert buckets_within(BUCKETS, 4) == [0]
    assert buckets_within(BUCKETS, 3) == []
    assert buckets_within([(10, 12), (20, 24)], 11) == [0]    # a source of 10 and a target of 11 tokens


def test_a_short_epoch_feeds_every_short_pair_once_and_nothing_else():
    it = iterator()
    data = it.data
    for epoch in (0, 3):
        batches = list(it.epoch(IteratorPosition(epoch, 0, short_only=True)))
        assert all(b.source.shape[1] <= SHORT_LENGTH and b.target_input.shape[1] <= SHORT_LENGTH + 1
                   for b in batches)
        fed = [i for b in batches for i in pair_indices(b)]
        assert sorted(fed) == sorted(short_pairs(data)) and len(fed) == len(set(fed))
        assert len(batches) == it.num_batches(short_only=True)
    assert it.num_short_pairs() == len(short_pairs(data))
    # Seeded by (seed, epoch): another epoch, another order; the same epoch again, the same.
    first = [pair_indices(b) for b in it.epoch(IteratorPosition(0, 0, short_only=True))]
    assert first != [pair_indices(b) for b in it.epoch(IteratorPosition(1, 0, short_only=True))]
    assert first == [pair_indices(b) for b in iterator().epoch(IteratorPosition(0, 0, short_only=True))]
    assert [pair_indices(b) for b in it.epoch(IteratorPosition(0, 2, short_only=True))] == first[2:]


def test_full_epochs_keep_todays_order_with_or_without_short_buckets():
    plain = BucketBatchIterator(numbered_data(), BUCKETS, 8, 5)
    with_short = iterator()
    for epoch in range(3):
        expected = [list(chunk) for _, chunk in todays_global_batches(plain, epoch)]
        assert [pair_indices(b) for b in plain.epoch(IteratorPosition(epoch, 0))] == expected
        assert [pair_indices(b) for b in with_short.epoch(IteratorPosition(epoch, 0))] == expected
    assert with_short.num_batches() == plain.num_batches() > with_short.num_batches(short_only=True) > 0


@pytest.mark.parametrize("num_workers", [2, 3])
def test_workers_run_the_same_number_of_short_batches(num_workers):
    workers = [iterator(rank=rank, num_workers=num_workers) for rank in range(num_workers)]
    counts = {w.num_batches(short_only=True) for w in workers}
    assert len(counts) == 1
    fed = [i for w in workers for b in w.epoch(IteratorPosition(0, 0, short_only=True)) for i in pair_indices(b)]
    assert len(fed) == len(set(fed)) and set(fed) <= short_pairs(workers[0].data)
    workers[0].max_short_batches_per_epoch = 2              # the count hosts agreed on
    assert workers[0].num_batches(short_only=True) == 2
    assert workers[0].num_batches() == workers[1].num_batches()


def hp(**values):
    return parse_hyperparameters({k: str(v) for k, v in values.items()})


def test_phase_rules_for_a_fraction_of_the_updates():
    curriculum = Curriculum.from_hyperparameters(hp(curriculum="length", curriculum_fraction=0.3,
                                                    max_num_batches=50))
    assert curriculum.switch_update == 15 and curriculum.initial_phase == SHORT
    state = TrainingState(num_updates=14, epoch=2, batch_index=5, curriculum_phase=SHORT)
    assert not curriculum.advance(state) and state.curriculum_phase == SHORT
    state.num_updates = 15
    assert curriculum.switch_due(state) and curriculum.advance(state)
    assert (state.curriculum_phase, state.epoch, state.batch_index) == (ALL, 3, 0)   # the short epoch ends there
    assert curriculum.position(state) == IteratorPosition(3, 0, short_only=False)
    assert not curriculum.switch_due(state) and not curriculum.advance(state)
    # A switch right at an epoch's start does not skip an epoch.
    at_start = TrainingState(num_updates=15, epoch=4, batch_index=0, curriculum_phase=SHORT)
    assert curriculum.advance(at_start) and (at_start.epoch, at_start.batch_index) == (4, 0)
    tiny = Curriculum.from_hyperparameters(hp(curriculum="length", curriculum_fraction=0.1, max_num_batches=4))
    assert tiny.switch_update == 1                           # at least one update on short sentences


def test_phase_rules_for_a_number_of_epochs():
    curriculum = Curriculum.from_hyperparameters(hp(curriculum="length", curriculum_num_epochs=2))
    state = TrainingState(num_updates=1000, epoch=1, batch_index=7, curriculum_phase=SHORT)
    assert not curriculum.switch_due(state)                  # updates do not matter, epochs do
    assert curriculum.position(state) == IteratorPosition(1, 7, short_only=True)
    state.epoch, state.batch_index = 2, 0
    assert curriculum.advance(state) and (state.curriculum_phase, state.epoch, state.batch_index) == (ALL, 2, 0)


def test_without_a_curriculum_there_is_one_phase():
    curriculum = Curriculum.from_hyperparameters(hp())
    state = TrainingState(num_updates=10, epoch=3, batch_index=2)
    assert curriculum.initial_phase == ALL == state.curriculum_phase
    assert not curriculum.advance(state) and curriculum.position(state) == IteratorPosition(3, 2)
    assert short_bucket_indices(hp(), BUCKETS) == []


def test_gate_errors_name_the_setting():
    with pytest.raises(UserError) as info:
        short_bucket_indices(hp(curriculum="length", curriculum_short_length=2, max_num_batches=10,
                                bucket_width=4), BUCKETS)
    assert str(info.value) == ("hyperparameter 'curriculum_short_length' = 2: no bucket holds only pairs that short "
                               "(the smallest bucket is 4 source x 3 target tokens; bucket_width = 4); raise "
                               "curriculum_short_length to at least 4")
    settings = hp(curriculum="length", curriculum_short_length=4, max_num_batches=10)
    few = BucketBatchIterator(numbered_data(), BUCKETS, 8, 5, num_workers=2, min_batch_size=2,
                              short_buckets=short_bucket_indices(settings, BUCKETS))
    few.bucket_members[0] = few.bucket_members[0][:3]        # 3 short pairs: one batch, not one per worker
    with pytest.raises(UserError, match=r"= 4: the short buckets \(4x4\) hold 3 training pairs: too few for one "
                                        r"batch on each of 2 worker\(s\); raise curriculum_short_length"):
        check_short_phase(settings, few, 2)
    check_short_phase(settings, iterator(4), 1)
    check_short_phase(SimpleNamespace(curriculum="none"), few, 2)
