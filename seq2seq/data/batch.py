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
        flat_labels = self.labels.reshape(-1)
        positions = np.flatnonzero(flat_labels != 0)
        arrays = (self.source, self.source_length, self.target_input, self.labels, flat_labels[positions])
        return LoadedBatch(*(mx.nd.array(a, ctx=ctx, dtype="float32") for a in arrays),
                           valid_positions=mx.nd.array(positions, ctx=ctx, dtype="int64"))


@dataclass
class LoadedBatch:
    """The NDArray form of a Batch shard on one device. valid_positions `(tokens,)` int64 indexes the
    non-padding positions of the flattened `(batch * trg_len)` target; valid_labels `(tokens,)` are their labels."""

    source: mx.nd.NDArray
    source_length: mx.nd.NDArray
    target_input: mx.nd.NDArray
    labels: mx.nd.NDArray
    valid_labels: mx.nd.NDArray
    valid_positions: mx.nd.NDArray

    def valid_logits(self, model, choose_next_input=None) -> mx.nd.NDArray:
        """Logits `(tokens, vocab)` of the non-padding target positions only: the output layer, the largest
        cost of a step, never runs on padding."""
        hidden = model.target_hidden(self.source, self.source_length, self.target_input, choose_next_input)
        rows = mx.nd.take(hidden.reshape((-1, hidden.shape[-1])), self.valid_positions)
        return model.output_logits(rows)
