"""A padded batch of sentence pairs that can split itself across devices."""

from dataclasses import dataclass
from typing import List, Optional

import mxnet as mx
import numpy as np


@dataclass
class Batch:
    """Arrays are numpy until loaded. source `(batch, src_len)`, source_length `(batch,)`,
    target_input `(batch, trg_len)` starting with <s>, labels `(batch, trg_len)` ending with </s>, 0-padded.
    sample_mask `(batch, trg_len)` or None: scheduled sampling's choice per position (1 = feed the reference)."""

    source: np.ndarray
    source_length: np.ndarray
    target_input: np.ndarray
    labels: np.ndarray
    sample_mask: Optional[np.ndarray] = None

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
        mask = self.sample_mask
        return [Batch(self.source[a:b], self.source_length[a:b], self.target_input[a:b], self.labels[a:b],
                      None if mask is None else mask[a:b])
                for a, b in zip(bounds[:-1], bounds[1:])]

    def split_and_load(self, contexts) -> List["LoadedBatch"]:
        """One LoadedBatch per context, holding that context's shard as NDArrays."""
        return [shard.load(ctx) for shard, ctx in zip(self.shards(len(contexts)), contexts)]

    def load(self, ctx) -> "LoadedBatch":
        flat_labels = self.labels.reshape(-1)
        positions = np.flatnonzero(flat_labels != 0)
        arrays = (self.source, self.source_length, self.target_input, self.labels, flat_labels[positions])
        mask = None if self.sample_mask is None else mx.nd.array(self.sample_mask, ctx=ctx, dtype="float32")
        return LoadedBatch(*(mx.nd.array(a, ctx=ctx, dtype="float32") for a in arrays),
                           valid_positions=mx.nd.array(positions, ctx=ctx, dtype="int64"), sample_mask=mask)


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
    sample_mask: Optional[mx.nd.NDArray] = None

    def valid_logits(self, model) -> mx.nd.NDArray:
        """Logits `(tokens, vocab)` of the non-padding target positions only, from one program call: the output
        layer, the largest cost of a step, never runs on padding."""
        return model.training_logits(self.source, self.source_length, self.target_input, self.valid_positions,
                                     self.sample_mask).logits
