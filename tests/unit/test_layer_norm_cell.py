"""Layer-normalised LSTM and GRU steps against a float64 numpy reference."""

import mxnet as mx
import numpy as np
import pytest

from seq2seq.model.layer_norm_cell import LayerNormRecurrentCell


def _norm(v, gamma, beta, eps=1e-5):
    mean = v.mean(axis=-1, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=-1, keepdims=True)
    return (v - mean) / np.sqrt(var + eps) * gamma + beta


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _reference(cell_type, p, x, states):
    from_input = _norm(x @ p["i2h_weight"].T + p["i2h_bias"], p["i2h_norm_gamma"], p["i2h_norm_beta"])
    from_state = _norm(states[0] @ p["h2h_weight"].T + p["h2h_bias"], p["h2h_norm_gamma"], p["h2h_norm_beta"])
    if cell_type == "lstm":
        i, f, g, o = np.split(from_input + from_state, 4, axis=1)
        c = _sigmoid(f) * states[1] + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(_norm(c, p["c_norm_gamma"], p["c_norm_beta"]))
        return [h, c]
    ir, iz, in_ = np.split(from_input, 3, axis=1)
    hr, hz, hn = np.split(from_state, 3, axis=1)
    r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
    n = np.tanh(in_ + r * hn)
    return [(1 - z) * n + z * states[0]]


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_layer_norm_step_matches_numpy_reference(cell_type):
    rng = np.random.RandomState(3)
    hidden, inputs, batch = 5, 4, 3
    cell = LayerNormRecurrentCell(cell_type, hidden, inputs, prefix="cell_")
    cell.initialize()
    cell.cast("float64")
    values = {}
    for name, param in cell.collect_params().items():
        values[name[len("cell_"):]] = rng.uniform(-1, 1, param.shape)
        param.set_data(mx.nd.array(values[name[len("cell_"):]], dtype="float64"))
    x = rng.uniform(-1, 1, (batch, inputs))
    states = [rng.uniform(-1, 1, (batch, hidden)) for _ in range(cell.num_states)]
    expected = _reference(cell_type, values, x, states)
    for hybridize in (False, True):
        if hybridize:
            cell.hybridize()
        h, new_states = cell(mx.nd.array(x, dtype="float64"), [mx.nd.array(s, dtype="float64") for s in states])
        np.testing.assert_allclose(h.asnumpy(), expected[0], rtol=1e-10, atol=1e-10)
        for got, want in zip(new_states, expected):
            np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-10, atol=1e-10)
    assert set(values) >= {"i2h_norm_gamma", "h2h_norm_beta"}
