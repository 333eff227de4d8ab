"""A padded batch of sentence pairs that can split itself across devices."""

from dataclasses import dataclass
from typing import List

import mxnet as mx
import numpy as np


@dataclass
class Batch:
    """Arrays are numpy until loaded. source `(batch, src_len)`, source_length `(batch,)`,
    target_input `(batch, trg_len)` starting with <s>, labels `(batch, trg_len)` ending with </s>, 0-padded."""

    source: np.ndarray
    source_length: np.ndarray
    target_input: np.ndarray
    labels: np.ndarray

    @property
    def size(self) -> int:
        return self.source.shape[0]

    @property
    def num_target_tokens(self) -> int:
        """Target words plus </s>, without padding."""
        return int((self.labels != 0).sum())

    def shards(self, num_shards: int) -> List["Batch"]:
        """Split along the batch axis into `num_shards` nearly equal parts (each non-empty)."""
        bounds = np.linspace(0, self.size, num_shards + 1).astype(int)
        return [Batch(self.source[a:b], self.source_length[a:b], self.target_input[a:b], self.labels[a:b])
                for a, b in zip(bounds[:-1], bounds[1:])]

    def split_and_load(self, contexts) -> List["LoadedBatch"]:
        """One LoadedBatch per context, holding that context's shard as NDArrays."""
        return [shard.load(ctx) for shard, ctx in zip(self.shards(len(contexts)), contexts)]

    def load(self, ctx) -> "LoadedBatch":
        return LoadedBatch(*(mx.nd.array(a, ctx=ctx, dtype="float32")
                             for a in (self.source, self.source_length, self.target_input, self.labels)))


@dataclass
class LoadedBatch:
    """The NDArray form of a Batch shard on one device (all float32)."""

    source: mx.nd.NDArray
    source_length: mx.nd.NDArray
    target_input: mx.nd.NDArray
    labels: mx.nd.NDArray
