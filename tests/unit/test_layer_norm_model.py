"""The model with layer_normalization=true: padded equals unpadded, training and decoding programs agree in both
input-feeding modes, a tiny model learns and decodes, parameters round-trip; old configs build today's graph."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from seq2seq.inference.search import beam_search
from seq2seq.model.config import ModelConfig
from seq2seq.training.loss import MaskedCrossEntropy
from tests.unit.test_model import (SOURCES, TARGET_INPUT, assert_forward_equals_decode_steps, padded,
                                   test_encoder_output_for_padded_sentence_equals_unpadded as padded_check,
                                   test_gradients_reach_every_parameter as gradient_check, tiny_model)

LN_CONFIGS = {
    "ln-lstm": {"layer_normalization": True},
    "ln-gru": {"layer_normalization": True, "rnn_cell_type": "gru"},
    "ln-lstm-deep-residual": {"layer_normalization": True, "num_layers_encoder": 3, "num_layers_decoder": 2,
                              "rnn_residual_connections": True, "rnn_decoder_state_init": "avg"},
}


@pytest.fixture(autouse=True)
def ln_configs(monkeypatch):
    import tests.unit.test_model as test_model
    monkeypatch.setattr(test_model, "CONFIGS", dict(test_model.CONFIGS, **LN_CONFIGS))


def labels_for(rows):
    labels = np.zeros((len(rows), len(rows[0])), dtype=np.float32)
    for row, ids in enumerate(rows):
        words = [t for t in ids[1:] if t]
        labels[row, :len(words)] = words
        labels[row, len(words)] = 3
    return mx.nd.array(labels)


@pytest.mark.parametrize("name", sorted(LN_CONFIGS))
def test_layer_normalised_encoder_padded_equals_unpadded(name):
    padded_check(name)


@pytest.mark.parametrize("input_feeding", [False, True])
@pytest.mark.parametrize("name", sorted(LN_CONFIGS))
def test_layer_normalised_forward_equals_decode_steps(name, input_feeding):
    assert_forward_equals_decode_steps(input_feeding, name)


@pytest.mark.parametrize("input_feeding", [False, True])
@pytest.mark.parametrize("name", sorted(LN_CONFIGS))
def test_layer_normalised_gradients_reach_every_parameter(name, input_feeding):
    gradient_check(name, input_feeding)


def test_layer_normalisation_declares_gains_and_changes_the_outputs():
    plain, normalised = tiny_model(), tiny_model(layer_normalization=True)
    plain_names = set(plain.collect_params().keys())
    extra = set(normalised.collect_params().keys()) - plain_names
    assert {n.rsplit("_", 2)[-2] + "_" + n.rsplit("_", 1)[-1] for n in extra} >= {"norm_gamma", "norm_beta"}
    assert any("encoder" in n for n in extra) and any("decoder" in n for n in extra)
    source, source_length = padded(SOURCES)
    target_input, _ = padded(TARGET_INPUT)
    assert not np.allclose(plain(source, source_length, target_input).asnumpy(),
                           normalised(source, source_length, target_input).asnumpy())


def test_old_config_without_the_key_builds_todays_graph():
    today = tiny_model()
    values = today.config.to_dict()
    del values["layer_normalization"]
    loaded = ModelConfig.from_dict(values)
    assert loaded.layer_normalization is False
    from seq2seq.model.seq2seq_model import Seq2SeqModel
    rebuilt = Seq2SeqModel(loaded)
    assert sorted(rebuilt._collect_params_with_prefix()) == sorted(today._collect_params_with_prefix())   # file names
    assert len(today.encoder.fused_layers()) == 2


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
@pytest.mark.parametrize("input_feeding", [False, True])
def test_tiny_layer_normalised_model_learns_decodes_and_round_trips(tmp_path, input_feeding, cell_type):
    model = tiny_model(layer_normalization=True, input_feeding=input_feeding, rnn_cell_type=cell_type)
    source, source_length = padded(SOURCES)
    target_input, _ = padded(TARGET_INPUT)
    labels = labels_for(TARGET_INPUT)
    loss = MaskedCrossEntropy(0.0)
    trainer = gluon.Trainer(model.collect_params(), "adam", {"learning_rate": 0.02})
    losses = []
    for _ in range(40):
        with autograd.record():
            total, _, _ = loss(model(source, source_length, target_input), labels)
        total.backward()
        trainer.step(1)
        losses.append(float(total.asscalar()))
    assert losses[-1] < 0.5 * losses[0]
    hypotheses = beam_search(model, source, source_length, np.array([8, 8, 8]), beam_size=3)
    learned = [[t for t in ids[1:] if t] for ids in TARGET_INPUT]
    assert sum(h.token_ids == words for h, words in zip(hypotheses, learned)) >= 2     # memorised targets
    path = str(tmp_path / "params")
    model.save_parameters(path)
    reloaded = tiny_model(seed=11, layer_normalization=True, input_feeding=input_feeding, rnn_cell_type=cell_type)
    reloaded.load_parameters(path)
    np.testing.assert_allclose(reloaded(source, source_length, target_input).asnumpy(),
                               model(source, source_length, target_input).asnumpy(), atol=1e-6)
    assert [h.token_ids for h in beam_search(reloaded, source, source_length, np.array([8, 8, 8]), beam_size=3)] == \
        [h.token_ids for h in hypotheses]
