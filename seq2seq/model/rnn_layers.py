"""MXNet's fused RNN operator as one-layer blocks (time-major `TNC` layout), with the parameters of Gluon's
`rnn.LSTM` / `rnn.GRU` (the same names, shapes and initialisation, so parameter files load either way).

The fused operator takes all of a layer's weights as one flat vector. Gluon's layers concatenate them into a
fresh array at every call; an inference program can instead be given the flat vector, which the model writes
into a buffer it keeps (`flat_parameters`): the same values, without allocating (and page-faulting) a new
megabyte-sized array for every sentence.
"""

from typing import Dict

import mxnet as mx
from mxnet.gluon import HybridBlock

from .rnn_cell import declare_rnn_parameters, flat_rnn_parameters


class FusedRNNLayer(HybridBlock):
    """One LSTM or GRU layer: inputs `(seq_len, batch, input_size)` -> outputs `(seq_len, batch, num_hidden)`,
    starting from zero states. Call as `layer(inputs)` or `layer(inputs, flat)` with `flat` the layer's
    parameters as `flat_parameters` lays them out."""

    def __init__(self, cell_type: str, num_hidden: int, input_size: int, **kwargs):
        super().__init__(**kwargs)
        self._cell_type = cell_type
        self._num_hidden = num_hidden
        declare_rnn_parameters(self, "l0_", cell_type, num_hidden, input_size)      # Gluon's rnn layer names
        self._buffers: Dict[mx.Context, mx.nd.NDArray] = {}

    def hybrid_forward(self, F, inputs, flat=None, *, l0_i2h_weight, l0_h2h_weight, l0_i2h_bias, l0_h2h_bias):
        if flat is None:
            flat = flat_rnn_parameters(F, l0_i2h_weight, l0_h2h_weight, l0_i2h_bias, l0_h2h_bias)
        if F is mx.nd:
            zeros = F.zeros((1, inputs.shape[1], self._num_hidden), ctx=inputs.context, dtype=inputs.dtype)
        else:
            zeros = F.zeros(shape=(1, 0, self._num_hidden))      # batch inferred from the inputs
        states = [zeros, zeros] if self._cell_type == "lstm" else [zeros]
        return F.RNN(inputs, flat, *states, state_size=self._num_hidden, num_layers=1, mode=self._cell_type,
                     state_outputs=False)

    def _collect_params_with_prefix(self, prefix=""):
        """Parameter-file names as Gluon's rnn.LSTM / rnn.GRU write them (`_unfused.0.i2h_weight`), so that files
        written by either load in both."""
        prefix = prefix + "." if prefix else ""
        return {prefix + "_unfused.0." + key[len("l0_"):]: value for key, value in self._reg_params.items()}

    def flat_parameters(self, ctx) -> mx.nd.NDArray:
        """The layer's parameters on `ctx` as the fused operator's flat vector, written into a buffer this layer
        keeps (read them again after any parameter change: each call copies the current values)."""
        parts = [self.l0_i2h_weight.data(ctx), self.l0_h2h_weight.data(ctx), self.l0_i2h_bias.data(ctx),
                 self.l0_h2h_bias.data(ctx)]
        size = sum(part.size for part in parts)
        buffer = self._buffers.get(ctx)
        if buffer is None or buffer.size != size or buffer.dtype != parts[0].dtype:
            buffer = mx.nd.empty((size,), ctx=ctx, dtype=parts[0].dtype)
            self._buffers[ctx] = buffer
        flat_rnn_parameters(mx.nd, *parts, out=buffer)
        return buffer


def fused_rnn_layer(cell_type: str, num_hidden: int, input_size: int, prefix: str = None) -> FusedRNNLayer:
    """One fused LSTM or GRU layer; input `(seq_len, batch, input_size)`, output `(seq_len, batch, num_hidden)`."""
    return FusedRNNLayer(cell_type, num_hidden, input_size, prefix=prefix)
