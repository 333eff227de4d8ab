"""The attentional encoder-decoder: shapes, masking of padding, agreement of its programs, gradients, options."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from seq2seq.model.attention import ATTENTION_TYPES, Attention, KeyProjection
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel
from seq2seq.training.loss import MaskedCrossEntropy

SOURCE_VOCAB, TARGET_VOCAB = 23, 19


def tiny_model(hybridize=True, seed=3, **overrides) -> Seq2SeqModel:
    settings = dict(source_vocab_size=SOURCE_VOCAB, target_vocab_size=TARGET_VOCAB, num_embed_source=8,
                    num_embed_target=6, rnn_num_hidden=10, rnn_attention_num_hidden=7, input_feeding=False,
                    max_seq_len_source=20, max_seq_len_target=20)
    settings.update(overrides)
    mx.random.seed(seed)
    model = Seq2SeqModel(ModelConfig(**settings))
    model.initialize_parameters(mx.init.Xavier(magnitude=2.34), mx.cpu())
    if hybridize:
        model.hybridize()
    return model


def padded(rows, width=None, bos=False):
    """rows of ids -> (ids `(batch, width)` float32 NDArray, lengths `(batch,)`)."""
    width = width or max(len(r) for r in rows)
    array = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        array[i, :len(row)] = row
    return mx.nd.array(array), mx.nd.array([len(r) for r in rows])


SOURCES = [[4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 4]]
TARGET_INPUT = [[2, 4, 5, 6, 7], [2, 8, 9, 0, 0], [2, 10, 11, 12, 0]]

CONFIGS = {
    "lstm": {},
    "gru": {"rnn_cell_type": "gru"},
    "lstm-deep-residual": {"num_layers_encoder": 3, "num_layers_decoder": 3, "rnn_residual_connections": True},
    "gru-deep-attention-bottom": {"rnn_cell_type": "gru", "num_layers_encoder": 2, "num_layers_decoder": 2,
                                  "rnn_attention_in_upper_layers": True, "rnn_decoder_state_init": "avg"},
    "lstm-deep-attention-top": {"num_layers_decoder": 2, "rnn_attention_in_upper_layers": False,
                                "rnn_decoder_state_init": "zero", "rnn_attention_type": "bilinear"},
}


def step_by_step_logits(model, source, source_length, target_input):
    """Teacher-forced logits `(batch, trg_len, vocab)` from a manual loop over decode_step."""
    encoded, states = model.encode(source, source_length)
    logits = []
    for t in range(target_input.shape[1]):
        step_logits, _, states = model.decode_step(target_input[:, t], states, encoded)
        logits.append(step_logits.asnumpy())
    return np.stack(logits, axis=1)


# ----- shapes -----

@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_program_output_shapes(name):
    model = tiny_model(**CONFIGS[name])
    source, source_length = padded(SOURCES)
    target_input, _ = padded(TARGET_INPUT)
    logits = model(source, source_length, target_input)
    assert logits.shape == (3, 5, TARGET_VOCAB)
    encoded, states = model.encode(source, source_length)
    assert encoded.encoded.shape == (3, 6, 10)
    assert encoded.keys.shape[:2] == (3, 6)
    assert all(s.shape[0] == 3 for s in states)
    step_logits, attention, new_states = model.decode_step(target_input[:, 0], states, encoded)
    assert step_logits.shape == (3, TARGET_VOCAB)
    assert attention.shape == (3, 6)
    assert [s.shape for s in new_states] == [s.shape for s in states]


# ----- masks -----

@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
def test_attention_block_gives_padding_zero_weight(attention_type):
    batch, steps, source_len, hidden = 3, 4, 6, 10
    keys_block = KeyProjection(attention_type, 7, hidden, hidden)
    attention = Attention(attention_type, 7, hidden)
    for block in (keys_block, attention):
        block.initialize(mx.init.Xavier())
    rng = np.random.RandomState(0)
    query = mx.nd.array(rng.randn(batch, steps, hidden))
    values = rng.randn(batch, source_len, hidden).astype(np.float32)
    lengths = np.array([2, 6, 4])
    context, weights = attention(query, keys_block(mx.nd.array(values)), mx.nd.array(values), mx.nd.array(lengths))
    weights = weights.asnumpy()
    assert weights.shape == (batch, steps, source_len)
    for row, length in enumerate(lengths):
        assert np.all(weights[row, :, length:] == 0.0)
        assert np.all(weights[row, :, :length] > 0.0)
        np.testing.assert_allclose(weights[row].sum(axis=-1), 1.0, rtol=1e-5)
        if attention_type == "fixed":
            np.testing.assert_allclose(weights[row, :, :length], 1.0 / length, rtol=1e-6)
    # The context is the weighted mean of the valid values only: garbage in the padding must not leak in.
    garbage = values.copy()
    for row, length in enumerate(lengths):
        garbage[row, length:] = 1e6
    garbage_keys = keys_block(mx.nd.array(garbage))
    context_garbage, weights_garbage = attention(query, garbage_keys, mx.nd.array(garbage), mx.nd.array(lengths))
    np.testing.assert_allclose(context_garbage.asnumpy(), context.asnumpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weights_garbage.asnumpy(), weights, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
@pytest.mark.parametrize("input_feeding", [False, True])
def test_decode_step_attention_is_zero_on_padded_source(attention_type, input_feeding):
    model = tiny_model(rnn_attention_type=attention_type, input_feeding=input_feeding)
    source, source_length = padded(SOURCES, width=8)
    encoded, states = model.encode(source, source_length)
    previous = mx.nd.array([2, 2, 2])
    for _ in range(3):
        logits, attention, states = model.decode_step(previous, states, encoded)
        weights = attention.asnumpy()
        for row, source_ids in enumerate(SOURCES):
            assert np.all(weights[row, len(source_ids):] == 0.0)
            np.testing.assert_allclose(weights[row].sum(), 1.0, rtol=1e-5)
        previous = mx.nd.argmax(logits, axis=1)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_encoder_output_for_padded_sentence_equals_unpadded(name):
    """Padding never reaches valid positions, also not through the length-reversed backward direction."""
    model = tiny_model(**CONFIGS[name])
    sentence = SOURCES[1]
    alone_source, alone_length = padded([sentence])
    alone, alone_states = model.encode(alone_source, alone_length)
    batch_source, batch_length = padded([[4, 5], sentence, [6] * 9], width=11)
    batched, batch_states = model.encode(batch_source, batch_length)
    n = len(sentence)
    np.testing.assert_allclose(batched.encoded.asnumpy()[1, :n], alone.encoded.asnumpy()[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched.keys.asnumpy()[1, :n], alone.keys.asnumpy()[0], atol=1e-5, rtol=0)
    for batch_state, alone_state in zip(batch_states, alone_states):
        np.testing.assert_allclose(batch_state.asnumpy()[1], alone_state.asnumpy()[0], atol=1e-5, rtol=0)


def test_translation_of_padded_sentence_equals_unpadded():
    """End to end: teacher-forced logits of a sentence do not depend on how much padding its batch has."""
    model = tiny_model(rnn_attention_type="mlp")
    target_input, _ = padded([TARGET_INPUT[0]])
    alone_source, alone_length = padded([SOURCES[0]])
    alone = model(alone_source, alone_length, target_input).asnumpy()
    batch_source, batch_length = padded([SOURCES[0], [5] * 10])
    batch_target, _ = padded([TARGET_INPUT[0], TARGET_INPUT[0]])
    batched = model(batch_source, batch_length, batch_target).asnumpy()
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-5, rtol=0)


# ----- agreement of the programs -----

def assert_forward_equals_decode_steps(input_feeding: bool, name: str) -> None:
    """Teacher-forced logits of the whole target at once equal those of decode_step, one step at a time."""
    model = tiny_model(input_feeding=input_feeding, **CONFIGS[name])
    source, source_length = padded(SOURCES)
    target_input, _ = padded(TARGET_INPUT)
    forward = model(source, source_length, target_input).asnumpy()
    stepped = step_by_step_logits(model, source, source_length, target_input)
    np.testing.assert_allclose(forward, stepped, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fused_teacher_forcing_equals_decode_steps(name):
    assert_forward_equals_decode_steps(False, name)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_input_feeding_forward_equals_decode_steps(name):
    assert_forward_equals_decode_steps(True, name)


def test_input_feeding_changes_the_decoder():
    """With input feeding the previous attentional state is an input: step 2 logits must depend on step 1's."""
    model = tiny_model(input_feeding=True)
    assert model.decoder.num_states == model.config.states_per_layer + 1
    source, source_length = padded(SOURCES)
    encoded, states = model.encode(source, source_length)
    _, _, states = model.decode_step(mx.nd.array([2, 2, 2]), states, encoded)
    changed = [s.copy() for s in states]
    changed[-1] = changed[-1] + 1.0
    logits, _, _ = model.decode_step(mx.nd.array([4, 4, 4]), states, encoded)
    logits_changed, _, _ = model.decode_step(mx.nd.array([4, 4, 4]), changed, encoded)
    assert np.abs(logits.asnumpy() - logits_changed.asnumpy()).max() > 1e-4


@pytest.mark.parametrize("input_feeding", [False, True])
def test_scheduled_sampling_mask(input_feeding):
    """A mask of ones equals teacher forcing; a mask of zeros feeds the model's own arg-max (greedy feed)."""
    model = tiny_model(input_feeding=input_feeding)
    source, source_length = padded(SOURCES)
    target_input, _ = padded(TARGET_INPUT)
    reference = model(source, source_length, target_input).asnumpy()
    ones = mx.nd.ones(target_input.shape)
    np.testing.assert_allclose(model(source, source_length, target_input, ones).asnumpy(), reference,
                               atol=1e-5, rtol=1e-5)
    zeros = mx.nd.zeros(target_input.shape)
    sampled = model(source, source_length, target_input, zeros).asnumpy()
    encoded, states = model.encode(source, source_length)
    previous, expected = target_input[:, 0], []
    for _ in range(target_input.shape[1]):
        logits, _, states = model.decode_step(previous, states, encoded)
        expected.append(logits.asnumpy())
        previous = mx.nd.argmax(logits, axis=1)
    np.testing.assert_allclose(sampled, np.stack(expected, axis=1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("input_feeding", [False, True])
def test_hybridized_equals_imperative(input_feeding):
    hybrid = tiny_model(input_feeding=input_feeding, num_layers_encoder=2, num_layers_decoder=2)
    imperative = tiny_model(hybridize=False, input_feeding=input_feeding, num_layers_encoder=2, num_layers_decoder=2)
    source, source_length = padded(SOURCES)
    target_input, _ = padded(TARGET_INPUT)
    np.testing.assert_allclose(hybrid(source, source_length, target_input).asnumpy(),
                               imperative(source, source_length, target_input).asnumpy(), atol=1e-5, rtol=1e-5)


# ----- gradients -----

@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("input_feeding", [False, True])
def test_gradients_reach_every_parameter(name, input_feeding):
    model = tiny_model(input_feeding=input_feeding, **CONFIGS[name])
    source, source_length = padded(SOURCES)
    target_input, _ = padded(TARGET_INPUT)
    labels = np.zeros((3, 5), dtype=np.float32)
    for row, ids in enumerate(TARGET_INPUT):
        words = [t for t in ids[1:] if t]
        labels[row, :len(words)] = words
        labels[row, len(words)] = 3
    loss = MaskedCrossEntropy(0.1)
    with autograd.record():
        total, _, _ = loss(model(source, source_length, target_input), mx.nd.array(labels))
    total.backward()
    params = model.collect_params()
    encoder_names = [n for n in params.keys() if "_encoder_" in n]
    assert len(encoder_names) >= 9
    no_gradient = [n for n, p in params.items()
                   if p.grad_req != "null" and float(p.grad().abs().sum().asscalar()) == 0.0]
    assert not [n for n in no_gradient if n in encoder_names], "encoder parameters without gradient"
    # Decoder parameters too, except the initial-state projection when the decoder starts from zeros.
    allowed = {n for n in params.keys() if "_init_" in n} if model.config.rnn_decoder_state_init == "zero" else set()
    assert set(no_gradient) <= allowed


# ----- options -----

def test_residual_connection_adds_the_layer_input(tmp_path):
    deep = tiny_model(num_layers_encoder=2, rnn_residual_connections=True, rnn_first_residual_layer=2,
                      rnn_decoder_state_init="avg")
    plain_deep = tiny_model(num_layers_encoder=2, rnn_residual_connections=False, rnn_decoder_state_init="avg")
    shallow = tiny_model(num_layers_encoder=1, rnn_decoder_state_init="avg")
    # Same parameters everywhere: the structural names do not depend on the residual setting.
    path = str(tmp_path / "deep.params")
    deep.save_parameters(path)
    plain_deep.load_parameters(path)
    shallow.load_parameters(path, ignore_extra=True)
    source, source_length = padded(SOURCES)
    first_layer = shallow.encode(source, source_length)[0].encoded                 # (batch, src_len, hidden)
    upper = deep.encoder.upper_layers[0](mx.nd.transpose(first_layer, axes=(1, 0, 2)))
    expected = mx.nd.transpose(upper, axes=(1, 0, 2)) + first_layer
    residual = deep.encode(source, source_length)[0].encoded
    plain = plain_deep.encode(source, source_length)[0].encoded
    np.testing.assert_allclose(residual.asnumpy(), expected.asnumpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(plain.asnumpy(), mx.nd.transpose(upper, axes=(1, 0, 2)).asnumpy(),
                               atol=1e-5, rtol=1e-5)


def test_weight_tying_shares_one_parameter():
    tied = tiny_model(weight_tying=True, num_embed_target=10, rnn_num_hidden=10)
    untied = tiny_model(weight_tying=False, num_embed_target=10, rnn_num_hidden=10)
    decoder = tied.decoder
    assert decoder.output_layer.weight is decoder.embedding.weight
    assert len(list(tied.collect_params().keys())) == len(list(untied.collect_params().keys())) - 1
    # A change through one is seen by the other, and both paths contribute to the one gradient.
    source, source_length = padded(SOURCES)
    target_input, _ = padded(TARGET_INPUT)
    labels = mx.nd.array(np.where(target_input.asnumpy() > 0, 5, 0))
    with autograd.record():
        total, _, _ = MaskedCrossEntropy()(tied(source, source_length, target_input), labels)
    total.backward()
    gradient = decoder.embedding.weight.grad().asnumpy()
    unused_rows = sorted(set(range(TARGET_VOCAB)) - set(np.unique(target_input.asnumpy()).astype(int)))
    assert np.abs(gradient[unused_rows]).sum() > 0, "output layer gradient must reach the shared matrix"
    with pytest.raises(Exception, match="num_embed_target"):
        ModelConfig(source_vocab_size=5, target_vocab_size=5, num_embed_target=6, rnn_num_hidden=10,
                    weight_tying=True)


def test_odd_hidden_size_is_refused():
    with pytest.raises(Exception, match="even"):
        ModelConfig(source_vocab_size=5, target_vocab_size=5, rnn_num_hidden=11)


def test_config_round_trip():
    config = tiny_model(rnn_cell_type="gru", num_layers_decoder=2).config
    assert ModelConfig.from_dict(dict(config.to_dict(), unknown_future_key=1)) == config
