"""weight_init_type=gaussian and rnn_h2h_init=orthogonal (seq2seq/training/initialization.py) on real models:
every gate block of every recurrent matrix is orthogonal, Gaussian weights have the asked spread, biases are zero,
and the defaults give the same parameters as the job's initializer did before these options existed."""

import mxnet as mx
import numpy as np
import pytest

from seq2seq import train_job
from seq2seq.hyperparameters import Hyperparameters
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel
from seq2seq.training.initialization import OrthogonalRecurrent, initializer_for

ARCHITECTURES = {
    "lstm": dict(rnn_cell_type="lstm"),
    "gru-2x2": dict(rnn_cell_type="gru", num_layers_encoder=2, num_layers_decoder=2),
    "lstm-layer-norm": dict(rnn_cell_type="lstm", layer_normalization=True),
}


def initialized(seed: int, initializer, source_vocab=30, target_vocab=40, **config) -> dict:
    """{name: float64 values} of a small model initialised with `initializer` after mx.random.seed(seed)."""
    settings = dict(source_vocab_size=source_vocab, target_vocab_size=target_vocab, num_embed_source=12,
                    num_embed_target=14, rnn_num_hidden=16, rnn_attention_num_hidden=10)
    settings.update(config)
    mx.random.seed(seed)
    model = Seq2SeqModel(ModelConfig(**settings))
    model.initialize_parameters(initializer, mx.cpu())
    return {name[len(model.prefix):]: p.data().asnumpy().astype(np.float64)
            for name, p in model.collect_params().items()}


def previous_initializer(hp: Hyperparameters) -> mx.init.Initializer:
    """A copy of the job's initializer before weight_init_type=gaussian and rnn_h2h_init existed."""
    if hp.weight_init_type == "uniform":
        return mx.init.Uniform(abs(hp.weight_init_scale))
    return mx.init.Xavier(rnd_type="uniform", factor_type=hp.xavier_factor_type, magnitude=hp.weight_init_scale)


def recurrent(parameters: dict) -> dict:
    return {name: value for name, value in parameters.items() if name.endswith("h2h_weight")}


def gate_blocks(matrix: np.ndarray):
    hidden = matrix.shape[1]
    return [matrix[start:start + hidden] for start in range(0, matrix.shape[0], hidden)]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_gate_block_of_every_recurrent_matrix_is_orthogonal(architecture):
    config = ARCHITECTURES[architecture]
    parameters = initialized(3, initializer_for(Hyperparameters(rnn_h2h_init="orthogonal")), **config)
    matrices = recurrent(parameters)
    layers = 2 + config.get("num_layers_encoder", 1) - 1 + config.get("num_layers_decoder", 1)
    assert len(matrices) == layers            # both encoder directions, the upper encoder layers, every decoder layer
    gates = 4 if config["rnn_cell_type"] == "lstm" else 3
    for name, matrix in matrices.items():
        blocks = gate_blocks(matrix)
        assert len(blocks) == gates, name
        for index, block in enumerate(blocks):
            np.testing.assert_allclose(block @ block.T, np.eye(block.shape[0]), atol=1e-5, err_msg=f"{name} {index}")
            np.testing.assert_allclose(block.T @ block, np.eye(block.shape[0]), atol=1e-5, err_msg=f"{name} {index}")
        assert not np.allclose(blocks[0], blocks[1])                  # a fresh matrix per gate


def test_mxnets_orthogonal_initializer_is_not_orthogonal_per_gate():
    """Why the per-gate blocks: MXNet's Orthogonal orthogonalises the (4H, H) stack as a whole."""
    stacked = mx.nd.zeros((4 * 16, 16))
    mx.init.Orthogonal()._init_weight("decoder_rnn_l0_h2h_weight", stacked)
    block = gate_blocks(stacked.asnumpy().astype(np.float64))[0]
    assert np.abs(block @ block.T - np.eye(block.shape[0])).max() > 0.1


def test_orthogonal_leaves_the_other_weights_to_weight_init_type():
    hp = Hyperparameters(rnn_h2h_init="orthogonal", weight_init_type="uniform", weight_init_scale=0.05)
    parameters = initialized(4, initializer_for(hp))
    for name, value in parameters.items():
        if name.endswith("bias"):
            assert not value.any(), name
        elif not name.endswith("h2h_weight"):
            assert np.abs(value).max() <= 0.05 and value.std() > 0.02, name    # uniform(-0.05, 0.05)
    assert max(np.abs(m).max() for m in recurrent(parameters).values()) > 0.2


def test_orthogonal_is_reproducible_from_the_seed():
    hp = Hyperparameters(rnn_h2h_init="orthogonal")
    first, again, other = (recurrent(initialized(seed, initializer_for(hp))) for seed in (5, 5, 6))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
        assert not np.allclose(first[name], other[name])


def test_a_recurrent_matrix_that_is_not_a_stack_of_square_blocks_is_refused():
    initializer = OrthogonalRecurrent(mx.init.Xavier())
    parameter = mx.gluon.Parameter("odd_h2h_weight", shape=(10, 4))
    with pytest.raises(ValueError, match="odd_h2h_weight"):
        parameter.initialize(initializer, ctx=mx.cpu())


@pytest.mark.parametrize("sigma", [0.01, 0.1])
def test_gaussian_weights_have_the_given_spread_and_zero_biases(sigma):
    hp = Hyperparameters(weight_init_type="gaussian", weight_init_sigma=sigma)
    parameters = initialized(7, initializer_for(hp), target_vocab=4000, layer_normalization=True)
    big = parameters["decoder_out_weight"]                  # (4000, 16): 64,000 draws
    assert big.size >= 60000
    assert abs(big.std() / sigma - 1) < 0.02
    assert abs(big.mean()) < 4 * sigma / np.sqrt(big.size)
    everything = np.concatenate([v.ravel() for n, v in parameters.items() if n.endswith("weight")])
    assert abs(everything.std() / sigma - 1) < 0.02                  # recurrent and embedding weights too
    for name, value in parameters.items():
        if name.endswith("bias") or name.endswith("beta"):
            assert not value.any(), name
        elif name.endswith("gamma"):
            assert (value == 1).all(), name                          # layer-normalisation gains


@pytest.mark.parametrize("settings", [dict(), dict(xavier_factor_type="avg", weight_init_scale=1.5),
                                      dict(weight_init_type="uniform", weight_init_scale=0.1)],
                         ids=["xavier", "xavier-avg", "uniform"])
def test_the_defaults_initialise_as_before(settings):
    hp = Hyperparameters(**settings)
    ours = initialized(11, initializer_for(hp), rnn_cell_type="gru")
    before = initialized(11, previous_initializer(hp), rnn_cell_type="gru")
    assert ours.keys() == before.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], before[name], err_msg=name)


def test_the_training_job_uses_this_initializer():
    assert train_job.initializer_for is initializer_for
