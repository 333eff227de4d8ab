"""Parallel length buckets (Sockeye's scheme) and the assignment of sentence pairs to them."""

import itertools

import pytest

from seq2seq.data.bucketing import assign_bucket, define_parallel_buckets, mean_length_ratio


def reference_buckets(max_source, max_target, width, ratio):
    """Sockeye's rule written out independently: the longer side (by the expected length ratio target/source)
    steps by `width`, the other by the width scaled by the ratio; a side that runs out of sizes repeats its
    maximum; every size is at least 2; duplicates removed; sorted."""
    def sizes(maximum, step):
        values = []
        size = step
        while size < maximum:
            values.append(size)
            size += step
        return values + [maximum]
    source_step = max(1, int(round(width / ratio))) if ratio >= 1.0 else width
    target_step = width if ratio >= 1.0 else max(1, int(round(width * ratio)))
    source, target = sizes(max_source, source_step), sizes(max_target, target_step)
    count = max(len(source), len(target))
    source += [source[-1]] * (count - len(source))
    target += [target[-1]] * (count - len(target))
    return sorted({(max(2, s), max(2, t)) for s, t in zip(source, target)})


CASES = [
    (100, 100, 10, 1.0), (100, 101, 10, 1.0), (50, 60, 10, 1.2), (60, 40, 10, 0.7), (20, 20, 3, 1.0),
    (7, 9, 10, 1.0), (30, 30, 1, 1.0), (80, 80, 8, 2.5), (80, 80, 8, 0.3), (25, 25, 10, 1.04), (1, 1, 4, 1.0),
]


@pytest.mark.parametrize("max_source,max_target,width,ratio", CASES)
def test_buckets_follow_sockeye(max_source, max_target, width, ratio):
    assert define_parallel_buckets(max_source, max_target, width, ratio) == \
        reference_buckets(max_source, max_target, width, ratio)


def test_known_buckets():
    assert define_parallel_buckets(30, 31, 10, 1.0) == [(10, 10), (20, 20), (30, 30), (30, 31)]
    # Target twice as long: the source steps by 5 while the target steps by 10.
    assert define_parallel_buckets(20, 40, 10, 2.0) == [(5, 10), (10, 20), (15, 30), (20, 40)]


@pytest.mark.parametrize("max_source,max_target,width,ratio", CASES)
def test_buckets_are_monotone_and_cover_every_length(max_source, max_target, width, ratio):
    buckets = define_parallel_buckets(max_source, max_target, width, ratio)
    assert buckets == sorted(set(buckets))
    for (s1, t1), (s2, t2) in zip(buckets, buckets[1:]):
        assert s1 <= s2 and t1 <= t2
    assert buckets[-1] == (max(2, max_source), max(2, max_target))
    for source_len, target_len in itertools.product(range(1, max_source + 1), range(1, max_target + 1)):
        index = assign_bucket(buckets, source_len, target_len)
        assert index is not None
        source_size, target_size = buckets[index]
        assert source_len <= source_size and target_len <= target_size
        # The smallest fitting bucket: no earlier bucket fits.
        assert all(not (source_len <= s and target_len <= t) for s, t in buckets[:index])


def test_assign_bucket_refuses_what_does_not_fit():
    buckets = define_parallel_buckets(10, 12, 5, 1.0)
    assert assign_bucket(buckets, 11, 3) is None
    assert assign_bucket(buckets, 3, 13) is None
    assert assign_bucket(buckets, 10, 12) == len(buckets) - 1
    assert buckets[assign_bucket(buckets, 1, 1)] == buckets[0]


def test_mean_length_ratio():
    mean, std = mean_length_ratio([2, 4, 0, 5], [4, 4, 3, 10])
    assert mean == pytest.approx((2 + 1 + 2) / 3)
    assert std == pytest.approx((((2 - 5 / 3) ** 2 * 2 + (1 - 5 / 3) ** 2) / 3) ** 0.5)
    assert mean_length_ratio([], []) == (1.0, 0.0)
