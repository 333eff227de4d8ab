"""Sockeye-style parallel buckets and the assignment of sentence pairs to them. Pure functions."""

import math
from typing import List, Optional, Sequence, Tuple

Bucket = Tuple[int, int]  # (source_len, target_len) including <s>/</s> on the target side


def _bucket_sizes(max_len: int, step: int) -> List[int]:
    sizes = list(range(step, max_len, step)) + [max_len]
    return sizes


def define_parallel_buckets(max_source_len: int, max_target_len: int, bucket_width: int = 10,
                            length_ratio: float = 1.0) -> List[Bucket]:
    """Buckets whose longer side steps by `bucket_width` and whose other side steps proportionally.

    The side with the larger expected length steps by `bucket_width`; the other by
    `round(bucket_width / ratio)` or `round(bucket_width * ratio)` (at least 1). Once a side reaches its maximum
    it stays there for the remaining buckets; no size is below 2. Returns sorted, de-duplicated
    (source_len, target_len) pairs.
    """
    source_step, target_step = bucket_width, bucket_width
    if length_ratio >= 1.0:
        source_step = max(1, int(round(bucket_width / length_ratio)))
    else:
        target_step = max(1, int(round(bucket_width * length_ratio)))
    source_sizes = _bucket_sizes(max_source_len, source_step)
    target_sizes = _bucket_sizes(max_target_len, target_step)
    count = max(len(source_sizes), len(target_sizes))
    source_sizes += [max_source_len] * (count - len(source_sizes))
    target_sizes += [max_target_len] * (count - len(target_sizes))
    # At least 2 on each side, as in Sockeye: a target always holds <s> or </s> plus one word.
    return sorted({(max(2, s), max(2, t)) for s, t in zip(source_sizes, target_sizes)})


def assign_bucket(buckets: Sequence[Bucket], source_len: int, target_len: int) -> Optional[int]:
    """Index of the smallest bucket that fits both lengths, or None if none does."""
    for index, (source_size, target_size) in enumerate(buckets):
        if source_len <= source_size and target_len <= target_size:
            return index
    return None


def mean_length_ratio(source_lengths: Sequence[int], target_lengths: Sequence[int]) -> Tuple[float, float]:
    """Mean and standard deviation of target/source length ratios (sentences with an empty source skipped)."""
    ratios = [t / s for s, t in zip(source_lengths, target_lengths) if s > 0]
    if not ratios:
        return 1.0, 0.0
    mean = sum(ratios) / len(ratios)
    variance = sum((r - mean) ** 2 for r in ratios) / len(ratios)
    return mean, math.sqrt(variance)


def buckets_within(buckets: Sequence[Bucket], max_tokens: int) -> List[int]:
    """Indices of the buckets that hold only pairs of at most `max_tokens` tokens on each side: source size
    <= max_tokens and target size <= max_tokens + 1 (a bucket's target side counts the <s> / </s> position)."""
    return [index for index, (source_size, target_size) in enumerate(buckets)
            if source_size <= max_tokens and target_size - 1 <= max_tokens]
