"""A decoder RNN layer (LSTM or GRU) that runs one time step as two matrix products, or a whole sequence with
MXNet's fused RNN operator, on the same registered parameters.

Step by step, MXNet's fused operator would concatenate all of the layer's weights into one flat vector on every
call (about 70 ms a step for the reference decoder layer on one core); two `FullyConnected` products read the
parameters as they are. Over a whole sequence the concatenation is paid once and the fused kernel wins.
"""

from mxnet.gluon import HybridBlock

GATES = {"lstm": 4, "gru": 3}


def declare_rnn_parameters(block: HybridBlock, prefix: str, cell_type: str, num_hidden: int, input_size: int):
    """Give `block` one layer's parameters, `<prefix>i2h_weight` `(gates * hidden, input_size)`,
    `<prefix>h2h_weight` `(gates * hidden, hidden)`, `<prefix>i2h_bias` and `<prefix>h2h_bias` `(gates * hidden,)`
    (biases start at zero), as attributes of the same names."""
    width = GATES[cell_type] * num_hidden
    shapes = {"i2h_weight": (width, input_size), "h2h_weight": (width, num_hidden), "i2h_bias": (width,),
              "h2h_bias": (width,)}
    with block.name_scope():
        for name, shape in shapes.items():
            init = "zeros" if name.endswith("bias") else None
            setattr(block, prefix + name, block.params.get(prefix + name, shape=shape, init=init))


def flat_rnn_parameters(F, i2h_weight, h2h_weight, i2h_bias, h2h_bias, **out):
    """The fused RNN operator's flat parameter layout of one uni-directional layer: weights, then biases.
    `out=` writes into an existing array (imperative calls)."""
    return F.concat(F.reshape(i2h_weight, shape=(-1,)), F.reshape(h2h_weight, shape=(-1,)), i2h_bias, h2h_bias,
                    dim=0, **out)


class RecurrentCell(HybridBlock):
    """One LSTM or GRU layer with `num_hidden` units and `input_size` inputs.

    Parameters: i2h_weight `(gates * hidden, input_size)`, h2h_weight `(gates * hidden, hidden)`, i2h_bias and
    h2h_bias `(gates * hidden,)`. Gate order is MXNet's (LSTM [i, f, g, o]; GRU [r, z, n], the reset gate applied
    to the recurrent part of n), so `whole_sequence` and step mode compute the same function.

    Call as `cell(inputs, states, whole_sequence, flat_step)`: inputs `(steps, batch, input_size)` time-major,
    states a list of `(batch, hidden)` arrays ([h, c] for LSTM, [h] for GRU). `whole_sequence=False` requires
    steps == 1. Returns outputs `(steps, batch, hidden)` and the states after the last step. `flat_step`: one
    step on inputs `(batch, input_size)`, returning outputs `(batch, hidden)`.
    """

    def __init__(self, cell_type: str, num_hidden: int, input_size: int, layer_normalization: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self._cell_type = cell_type
        self._num_hidden = num_hidden
        self._layer_normalization = layer_normalization
        declare_rnn_parameters(self, "", cell_type, num_hidden, input_size)
        if layer_normalization:
            from .layer_norm_cell import declare_layer_norm_parameters
            declare_layer_norm_parameters(self, cell_type, num_hidden)

    @property
    def num_states(self) -> int:
        return 2 if self._cell_type == "lstm" else 1

    def hybrid_forward(self, F, inputs, states, whole_sequence=False, flat_step=False, **params):
        if self._layer_normalization:
            return self._layer_normalised(F, inputs, states, whole_sequence, flat_step, params)
        i2h_weight, h2h_weight, i2h_bias, h2h_bias = (params[name] for name in
                                                      ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias"))
        if whole_sequence:
            return self._sequence(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        if flat_step:
            return self._step(F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        h_next, new_states = self._step(F, F.reshape(inputs, shape=(-3, -2)), states, i2h_weight, h2h_weight,
                                        i2h_bias, h2h_bias)
        return F.expand_dims(h_next, axis=0), new_states

    def _layer_normalised(self, F, inputs, states, whole_sequence, flat_step, params):
        """The layer-normalised cell (layer_norm_cell.py): step by step also over a whole sequence."""
        from .layer_norm_cell import layer_norm_step, unroll

        def step(x, carried):
            return layer_norm_step(F, self._cell_type, self._num_hidden, x, carried, params)
        if whole_sequence:
            outputs, final = unroll(F, step, inputs, states)
            return outputs, list(final)
        if flat_step:
            return step(inputs, states)
        h_next, new_states = step(F.reshape(inputs, shape=(-3, -2)), states)
        return F.expand_dims(h_next, axis=0), new_states

    def _sequence(self, F, inputs, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        flat = flat_rnn_parameters(F, i2h_weight, h2h_weight, i2h_bias, h2h_bias)
        initial = [F.expand_dims(s, axis=0) for s in states]
        results = F.RNN(inputs, flat, *initial, state_size=self._num_hidden, num_layers=1, mode=self._cell_type,
                        state_outputs=True)
        return results[0], [F.squeeze(s, axis=0) for s in list(results)[1:]]

    def _step(self, F, x, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        """x `(batch, input_size)` -> h_next `(batch, hidden)`, new states."""
        width = GATES[self._cell_type] * self._num_hidden
        h = states[0]
        from_input = F.FullyConnected(x, i2h_weight, i2h_bias, num_hidden=width)
        from_state = F.FullyConnected(h, h2h_weight, h2h_bias, num_hidden=width)
        return gated_step(F, self._cell_type, from_input, from_state, states)


def gated_step(F, cell_type: str, from_input, from_state, states, normalise_cell=None):
    """The LSTM or GRU gates of one step from the input's and the state's pre-activations, each
    `(batch, gates * hidden)` in MXNet's gate order; states `[h, c]` or `[h]` `(batch, hidden)`.
    `normalise_cell`: applied to the LSTM cell state before the output tanh (layer normalisation), or None.
    Returns h_next `(batch, hidden)` and the new states."""
    if cell_type == "lstm":
        i, f, g, o = F.split(from_input + from_state, num_outputs=4, axis=1)
        c_next = (F.Activation(f, act_type="sigmoid") * states[1]
                  + F.Activation(i, act_type="sigmoid") * F.Activation(g, act_type="tanh"))
        shown = c_next if normalise_cell is None else normalise_cell(c_next)
        h_next = F.Activation(o, act_type="sigmoid") * F.Activation(shown, act_type="tanh")
        return h_next, [h_next, c_next]
    input_r, input_z, input_n = F.split(from_input, num_outputs=3, axis=1)
    state_r, state_z, state_n = F.split(from_state, num_outputs=3, axis=1)
    reset = F.Activation(input_r + state_r, act_type="sigmoid")
    update = F.Activation(input_z + state_z, act_type="sigmoid")
    candidate = F.Activation(input_n + reset * state_n, act_type="tanh")
    h_next = (1 - update) * candidate + update * states[0]
    return h_next, [h_next]
