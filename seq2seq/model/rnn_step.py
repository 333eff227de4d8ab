"""One time step of a fused RNN layer, computed with two matrix products on the layer's own parameters.

MXNet's fused RNN operator concatenates all of a layer's weights into one flat vector on every call. Over a
whole sequence that cost is paid once; decoding step by step it is paid at every step and dominates (about
70 ms a step for the reference decoder layer on one core). This block reads the same parameters directly.
"""

from mxnet.gluon import HybridBlock


class FusedLayerStep(HybridBlock):
    """Shares the parameters of `layer` (a one-layer `rnn.LSTM` or `rnn.GRU`, `TNC` layout).

    Input `(1, batch, input_size)` and states `[(1, batch, hidden)] * n`, like the fused layer with one step;
    returns output `(1, batch, hidden)` and the new states. Gate order is MXNet's: LSTM [i, f, g, o],
    GRU [r, z, n] with the reset gate applied to the recurrent part of n.
    """

    def __init__(self, layer, cell_type: str, num_hidden: int):
        super().__init__(prefix=layer.prefix, params=layer.params)
        self._cell_type = cell_type
        self._num_hidden = num_hidden
        self.i2h_weight = self.params.get("l0_i2h_weight")
        self.h2h_weight = self.params.get("l0_h2h_weight")
        self.i2h_bias = self.params.get("l0_i2h_bias")
        self.h2h_bias = self.params.get("l0_h2h_bias")

    def hybrid_forward(self, F, x, states, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        gates_per_cell = 4 if self._cell_type == "lstm" else 3
        width = gates_per_cell * self._num_hidden
        x = F.reshape(x, shape=(-3, -2))                                   # (batch, input)
        h = F.reshape(states[0], shape=(-3, -2))                           # (batch, hidden)
        from_input = F.FullyConnected(x, i2h_weight, i2h_bias, num_hidden=width)
        from_state = F.FullyConnected(h, h2h_weight, h2h_bias, num_hidden=width)
        if self._cell_type == "lstm":
            c = F.reshape(states[1], shape=(-3, -2))
            i, f, g, o = F.split(from_input + from_state, num_outputs=4, axis=1)
            c_next = (F.Activation(f, act_type="sigmoid") * c
                      + F.Activation(i, act_type="sigmoid") * F.Activation(g, act_type="tanh"))
            h_next = F.Activation(o, act_type="sigmoid") * F.Activation(c_next, act_type="tanh")
            new_states = [F.expand_dims(h_next, axis=0), F.expand_dims(c_next, axis=0)]
        else:
            input_r, input_z, input_n = F.split(from_input, num_outputs=3, axis=1)
            state_r, state_z, state_n = F.split(from_state, num_outputs=3, axis=1)
            reset = F.Activation(input_r + state_r, act_type="sigmoid")
            update = F.Activation(input_z + state_z, act_type="sigmoid")
            candidate = F.Activation(input_n + reset * state_n, act_type="tanh")
            h_next = (1 - update) * candidate + update * h
            new_states = [F.expand_dims(h_next, axis=0)]
        return F.expand_dims(h_next, axis=0), new_states
