"""Layer-normalised LSTM and GRU steps (Ba et al. 2016, in the form of Sockeye 1.x's LayerNormLSTMCell /
LayerNormGRUCell): the input-to-hidden and hidden-to-hidden pre-activations are each layer-normalised over their
full width (`gates * hidden`) with their own learned gain and bias, then summed; the LSTM's cell state is
normalised again (gain and bias of width `hidden`) before the output tanh. The cell state itself is carried
un-normalised.

The fused RNN operator cannot normalise, so a layer-normalised layer always runs step by step.
"""

from mxnet.gluon import HybridBlock

from .rnn_cell import GATES, declare_rnn_parameters, gated_step


def declare_layer_norm_parameters(block: HybridBlock, cell_type: str, num_hidden: int):
    """Give `block` the gains (start at one) and biases (start at zero) of the normalisations:
    `i2h_norm_gamma/beta` and `h2h_norm_gamma/beta` `(gates * hidden,)`, and for LSTM `c_norm_gamma/beta`
    `(hidden,)`."""
    width = GATES[cell_type] * num_hidden
    widths = {"i2h_norm": width, "h2h_norm": width}
    if cell_type == "lstm":
        widths["c_norm"] = num_hidden
    with block.name_scope():
        for name, size in widths.items():
            setattr(block, name + "_gamma", block.params.get(name + "_gamma", shape=(size,), init="ones"))
            setattr(block, name + "_beta", block.params.get(name + "_beta", shape=(size,), init="zeros"))


def layer_norm_step(F, cell_type: str, num_hidden: int, x, states, params, eps: float = 1e-5):
    """One layer-normalised step. x `(batch, input_size)`, states `[h, c]` (LSTM) or `[h]` (GRU), each
    `(batch, hidden)`; `params` maps the parameter names of `declare_rnn_parameters` and
    `declare_layer_norm_parameters` to arrays. Returns h_next `(batch, hidden)` and the new states."""
    width = GATES[cell_type] * num_hidden
    h = states[0]
    from_input = F.LayerNorm(F.FullyConnected(x, params["i2h_weight"], params["i2h_bias"], num_hidden=width),
                             params["i2h_norm_gamma"], params["i2h_norm_beta"], axis=-1, eps=eps)
    from_state = F.LayerNorm(F.FullyConnected(h, params["h2h_weight"], params["h2h_bias"], num_hidden=width),
                             params["h2h_norm_gamma"], params["h2h_norm_beta"], axis=-1, eps=eps)
    return gated_step(F, cell_type, from_input, from_state, states,
                      lambda c: F.LayerNorm(c, params["c_norm_gamma"], params["c_norm_beta"], axis=-1, eps=eps))

class LayerNormRecurrentCell(HybridBlock):
    """One layer-normalised LSTM or GRU step: `cell(x, states)` with x `(batch, input_size)` and states a list of
    `(batch, hidden)` arrays returns h_next `(batch, hidden)` and the new states. Parameters: those of
    `declare_rnn_parameters` (MXNet's gate order) plus the normalisation gains and biases."""

    def __init__(self, cell_type: str, num_hidden: int, input_size: int, **kwargs):
        super().__init__(**kwargs)
        self._cell_type = cell_type
        self._num_hidden = num_hidden
        declare_rnn_parameters(self, "", cell_type, num_hidden, input_size)
        declare_layer_norm_parameters(self, cell_type, num_hidden)

    @property
    def num_states(self) -> int:
        return 2 if self._cell_type == "lstm" else 1

    def hybrid_forward(self, F, x, states, **params):
        return layer_norm_step(F, self._cell_type, self._num_hidden, x, states, params)


def unroll(F, step, inputs, states):
    """Run `step(x, states) -> (h, new_states)` over time-major inputs `(steps, batch, input_size)` from `states`
    (list of `(batch, hidden)`), as one `foreach` loop. Returns outputs `(steps, batch, hidden)` and the final
    states."""
    return F.contrib.foreach(lambda x, carried: step(x, list(carried)), inputs, list(states))


def zero_states(F, inputs, num_states: int, num_hidden: int):
    """`num_states` zero arrays `(batch, num_hidden)` for time-major inputs `(steps, batch, input_size)`."""
    first = F.slice_axis(inputs, axis=0, begin=0, end=1)                       # (1, batch, input)
    zero_column = F.zeros_like(F.transpose(F.slice_axis(first, axis=2, begin=0, end=1), axes=(1, 0, 2)))
    column = F.reshape(zero_column, shape=(0, -1))                              # (batch, 1)
    return [F.broadcast_axis(column, axis=1, size=num_hidden) for _ in range(num_states)]   # distinct arrays


class LayerNormRNNLayer(LayerNormRecurrentCell):
    """One layer-normalised LSTM or GRU layer run step by step (the fused operator's replacement when
    `layer_normalization` is on): inputs `(seq_len, batch, input_size)` -> outputs `(seq_len, batch, num_hidden)`,
    from zero states. `layer(inputs, None)` is accepted for the fused layer's call signature. Outputs at padded
    positions depend only on earlier positions, so they never change the outputs of real ones. The parameters
    are the cell's."""

    def hybrid_forward(self, F, inputs, flat=None, **params):
        assert flat is None, "a layer-normalised layer has no flat parameter vector"
        num_states = self.num_states
        outputs, _ = unroll(F, lambda x, states: layer_norm_step(F, self._cell_type, self._num_hidden, x, states,
                                                                 params),
                            inputs, zero_states(F, inputs, num_states, self._num_hidden))
        return outputs
