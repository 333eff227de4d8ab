"""Source attention: scores every query step against every (unpadded) source position."""

from mxnet.gluon import HybridBlock, nn

ATTENTION_TYPES = ("dot", "mlp", "bilinear", "fixed")


class KeyProjection(HybridBlock):
    """Computed once per source batch: `(batch, src_len, enc_hidden)` -> keys `(batch, src_len, key_size)`."""

    def __init__(self, attention_type: str, num_hidden: int, query_size: int, encoded_size: int, **kwargs):
        super().__init__(**kwargs)
        self._type = attention_type
        with self.name_scope():
            if attention_type in ("mlp", "bilinear"):
                size = num_hidden if attention_type == "mlp" else query_size
                self.projection = nn.Dense(size, flatten=False, use_bias=False, in_units=encoded_size, prefix="key_")

    def hybrid_forward(self, F, encoded):
        return self.projection(encoded) if self._type in ("mlp", "bilinear") else encoded


class Attention(HybridBlock):
    """Masked attention over the source.

    dot: q·k (keys = encoder states; q is the decoder state, same size); bilinear: q·(W k);
    mlp: v·tanh(W_q q + W_k k); fixed: uniform over the valid source positions.
    """

    def __init__(self, attention_type: str, num_hidden: int, query_size: int, **kwargs):
        super().__init__(**kwargs)
        self._type = attention_type
        with self.name_scope():
            if attention_type == "mlp":
                self.query_projection = nn.Dense(num_hidden, flatten=False, in_units=query_size, prefix="query_")
                self.score_vector = nn.Dense(1, flatten=False, use_bias=False, in_units=num_hidden, prefix="score_")

    def hybrid_forward(self, F, query, keys, values, source_length, one_step_for_training=False, flat_step=False,
                       rows_per_source=1):
        """query `(batch, steps, q)`, keys `(batch, src_len, k)`, values `(batch, src_len, v)`, source_length `(batch,)`.

        Returns context `(batch, steps, v)` and weights `(batch, steps, src_len)`; padded positions get weight 0.
        `one_step_for_training` (steps must be 1): the same values, computed so that the backward pass is cheap.
        `flat_step`: one inference step without the steps axis: query `(rows, q)` -> context `(rows, v)`, weights
        `(rows, src_len)`, source_length `(rows,)`; keys and values hold one source for every `rows_per_source`
        consecutive rows (the hypotheses of a beam: `(rows / rows_per_source, src_len, ·)`), so the beam's rows read
        their source once: one matrix product per source for the context instead of one per row.
        """
        if flat_step:
            scores = self._flat_scores(F, query, keys, rows_per_source)                   # (rows, src_len)
            weights = F.softmax(scores, length=source_length.astype("int32"), axis=-1, use_length=True)
            context = F.batch_dot(F.reshape(weights, shape=(-4, -1, rows_per_source, 0)), values)
            return F.reshape(context, shape=(-3, 0)), weights
        scores = self._scores(F, query, keys, one_step_for_training)      # (batch, steps, src_len)
        lengths = F.broadcast_like(F.expand_dims(source_length, axis=1), F.slice_axis(scores, axis=2, begin=0, end=1)
                                   .reshape((0, 0)), lhs_axes=(1,), rhs_axes=(1,)).astype("int32")
        weights = F.softmax(scores, length=lengths, axis=-1, use_length=True)
        return F.batch_dot(weights, values), weights

    def _flat_scores(self, F, query, keys, rows_per_source):
        """query `(rows, q)`, keys `(rows / rows_per_source, src_len, k)` -> scores `(rows, src_len)`: the
        queries grouped per source `(sources, rows_per_source, q)` are that source's steps for `_scores`."""
        grouped = F.reshape(query, shape=(-4, -1, rows_per_source, 0))
        return F.reshape(self._scores(F, grouped, keys, False), shape=(-3, 0))

    def _scores(self, F, query, keys, one_step_for_training):
        if self._type == "mlp":
            projected = self.query_projection(query)                                  # (batch, steps, hidden)
            if one_step_for_training:
                hidden = F.expand_dims(_add_per_sentence(F, keys, F.reshape(projected, shape=(-3, -2))), axis=1)
            else:
                hidden = F.broadcast_add(F.expand_dims(projected, axis=2), F.expand_dims(keys, axis=1))
            # Activation runs oneDNN's vectorized kernel: about 10x faster than F.tanh on CPU.
            return self.score_vector(F.Activation(hidden, act_type="tanh")).reshape((0, 0, 0))
        if self._type == "fixed":
            return F.zeros_like(F.batch_dot(F.slice_axis(query, axis=2, begin=0, end=1),
                                            F.slice_axis(keys, axis=2, begin=0, end=1), transpose_b=True))
        return F.batch_dot(query, keys, transpose_b=True)


def _add_per_sentence(F, keys, vectors):
    """keys `(batch, src_len, n)` + vectors `(batch, n)` broadcast over src_len, as a matrix product.

    The broadcast is `S · vectors` with S `(batch * src_len, batch)` the 0/1 matrix selecting each position's
    sentence, so the gradient of `vectors` is the product `Sᵀ · g`. A broadcasting add would sum `g` over src_len
    with MXNet's reduction kernel instead, about 15× slower at the reference size (one call per target position
    and update when the decoder is unrolled).
    """
    positions = F.reshape(F.slice_axis(keys, axis=2, begin=0, end=1), shape=(0, 0))          # (batch, src_len)
    sentence_of_position = F.broadcast_like(F.expand_dims(F.contrib.arange_like(keys, axis=0), axis=1), positions)
    sentences = F.reshape(F.contrib.arange_like(vectors, axis=0), shape=(1, -1))               # (1, batch)
    selection = F.BlockGrad(F.broadcast_equal(F.reshape(sentence_of_position, shape=(-1, 1)), sentences))
    return keys + F.reshape_like(F.dot(selection, vectors), keys)
