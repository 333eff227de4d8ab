"""Greedy and beam search: against a hand-made bigram model (exact answers known) and a tiny real model."""

import itertools

import mxnet as mx
import numpy as np
import pytest

from seq2seq.constants import BOS_ID, EOS_ID
from seq2seq.inference.search import beam_search, greedy_search, length_penalty
from seq2seq.inference.translator import DecodeOptions, Translator, max_output_length
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import EncodedSource, Seq2SeqModel

A, B = 4, 5          # the two words of the bigram model
NEVER = -40.0        # log-probability of the reserved non-output symbols


class BigramModel:
    """A source-independent model: log p(next | previous) from a table. State: the step count, `(batch, 1)`.

    decode_step's attention is uniform over the valid source positions, so its shape can be checked."""

    def __init__(self, table: dict):
        self.vocab = 6
        self.log_probs = np.full((self.vocab, self.vocab), NEVER, dtype=np.float64)
        for previous, row in table.items():
            total = np.log(sum(row.values()))
            for token, p in row.items():
                self.log_probs[previous, token] = np.log(p) - total

    def encode(self, source, source_length):
        batch, src_len = source.shape
        encoded = mx.nd.zeros((batch, src_len, 2))
        return EncodedSource(encoded, encoded, source_length), [mx.nd.zeros((batch, 1))]

    def decode_step(self, previous_ids, states, encoded_source):
        previous = previous_ids.asnumpy().astype(int)
        logits = mx.nd.array(self.log_probs[previous])
        lengths = encoded_source.source_length.asnumpy()
        src_len = encoded_source.encoded.shape[1]
        attention = (np.arange(src_len)[None, :] < lengths[:, None]) / lengths[:, None]
        return logits, mx.nd.array(attention), [states[0] + 1]

    def sequence_log_prob(self, tokens) -> float:
        previous, total = BOS_ID, 0.0
        for token in list(tokens) + [EOS_ID]:
            total += self.log_probs[previous, token]
            previous = token
        return total


# Greedy takes A (0.6) but every continuation of A is poor; B then </s> is far better.
GARDEN_PATH = BigramModel({
    BOS_ID: {A: 0.6, B: 0.4},
    A: {A: 0.34, B: 0.33, EOS_ID: 0.33},
    B: {EOS_ID: 0.95, A: 0.05},
})


def exhaustive_best(model: BigramModel, max_len: int, alpha: float, beta: float):
    """The best (tokens, score) over every sequence of A/B of length < max_len followed by </s>."""
    best = None
    for length in range(max_len):
        for tokens in itertools.product((A, B), repeat=length):
            score = model.sequence_log_prob(tokens) / float(length_penalty(np.array(length + 1), alpha, beta))
            if best is None or score > best[1]:
                best = (list(tokens), score)
    return best


def one_source(batch=1, length=3):
    return mx.nd.ones((batch, length)) * 7, mx.nd.array([length] * batch)


def test_length_penalty_values():
    lengths = np.array([1, 2, 5, 10])
    np.testing.assert_allclose(length_penalty(lengths, 1.0, 0.0), [1, 2, 5, 10])
    np.testing.assert_allclose(length_penalty(lengths, 0.0, 3.0), [1, 1, 1, 1])
    np.testing.assert_allclose(length_penalty(lengths, 0.6, 5.0), ((5.0 + lengths) / 6.0) ** 0.6)
    np.testing.assert_allclose(length_penalty(np.array([1]), 0.7, 4.0), [1.0])  # a one-token output: no penalty


def test_greedy_follows_the_locally_best_token():
    source, source_length = one_source()
    hypothesis, = greedy_search(GARDEN_PATH, source, source_length, np.array([6]))
    # A (0.6), then A (0.34) repeatedly, until the length limit forces </s>.
    assert hypothesis.token_ids == [A] * 5
    np.testing.assert_allclose(hypothesis.score, GARDEN_PATH.sequence_log_prob([A] * 5), rtol=1e-5)


@pytest.mark.parametrize("alpha,beta", [(0.0, 0.0), (1.0, 0.0), (0.6, 5.0)])
def test_wide_beam_finds_the_exact_optimum(alpha, beta):
    source, source_length = one_source()
    max_len = 4
    hypothesis, = beam_search(GARDEN_PATH, source, source_length, np.array([max_len]), beam_size=16,
                              alpha=alpha, beta=beta)
    tokens, score = exhaustive_best(GARDEN_PATH, max_len, alpha, beta)
    assert hypothesis.token_ids == tokens
    np.testing.assert_allclose(hypothesis.score, score, rtol=1e-5)


def test_beam_of_two_escapes_the_garden_path():
    source, source_length = one_source()
    hypothesis, = beam_search(GARDEN_PATH, source, source_length, np.array([6]), beam_size=2, alpha=0.0)
    assert hypothesis.token_ids == [B]
    np.testing.assert_allclose(hypothesis.score, np.log(0.4) + np.log(0.95), rtol=1e-5)


def test_max_output_length_forces_the_end_and_keeps_the_model_eos_probability():
    never_ends = BigramModel({BOS_ID: {A: 1.0}, A: {A: 0.9, EOS_ID: 0.001, B: 0.099}, B: {A: 1.0}})
    source, source_length = one_source(batch=3)
    limits = np.array([1, 3, 7])
    for beam_size in (1, 3):
        hypotheses = beam_search(never_ends, source, source_length, limits, beam_size=beam_size, alpha=0.0)
        for hypothesis, limit in zip(hypotheses, limits):
            assert len(hypothesis.token_ids) <= limit - 1      # the limit counts </s>
            if beam_size == 1:                                   # greedy never chooses the unlikely </s>
                assert len(hypothesis.token_ids) == limit - 1
            np.testing.assert_allclose(hypothesis.score, never_ends.sequence_log_prob(hypothesis.token_ids),
                                       rtol=1e-5)


def test_finished_hypotheses_keep_their_score():
    """A beam that ended early must compete with its final score, not one changed by padding steps."""
    model = BigramModel({BOS_ID: {EOS_ID: 0.5, A: 0.5}, A: {A: 0.5, EOS_ID: 0.5}})
    source, source_length = one_source()
    hypothesis, = beam_search(model, source, source_length, np.array([8]), beam_size=4, alpha=0.0)
    assert hypothesis.token_ids == []
    np.testing.assert_allclose(hypothesis.score, np.log(0.5), rtol=1e-5)


def test_bigram_attention_rows_follow_the_output():
    source = mx.nd.ones((2, 5))
    source_length = mx.nd.array([2, 5])
    hypotheses = beam_search(GARDEN_PATH, source, source_length, np.array([6, 6]), beam_size=3, alpha=1.0,
                             return_attention=True)
    for hypothesis, length in zip(hypotheses, (2, 5)):
        assert hypothesis.attention.shape == (len(hypothesis.token_ids), 5)
        np.testing.assert_allclose(hypothesis.attention[:, :length], 1.0 / length)
        assert np.all(hypothesis.attention[:, length:] == 0)


# ----- a tiny real model -----

@pytest.fixture(scope="module")
def real_model():
    config = ModelConfig(source_vocab_size=15, target_vocab_size=12, num_embed_source=8, num_embed_target=8,
                         rnn_num_hidden=12, rnn_attention_num_hidden=8, input_feeding=True, max_seq_len_source=10,
                         max_seq_len_target=10)
    mx.random.seed(11)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(magnitude=3.0), mx.cpu())
    # Favour </s> a little so that some outputs end before the limit.
    bias = model.decoder.output_layer.bias
    bias.set_data(bias.data() + mx.nd.one_hot(mx.nd.array([EOS_ID]), 12).reshape(-1) * 1.5)
    model.hybridize()
    return model


SOURCES = [[4, 5, 6, 7], [8, 9], [10, 11, 12, 13, 14, 4, 5]]


def batch_of(sources):
    width = max(len(s) for s in sources)
    array = np.zeros((len(sources), width), dtype=np.float32)
    for i, s in enumerate(sources):
        array[i, :len(s)] = s
    return mx.nd.array(array), mx.nd.array([len(s) for s in sources])


def manual_greedy(model, source_ids, limit):
    """Arg-max decoding with decode_step, one sentence: (tokens without </s>, summed log-probability)."""
    source, source_length = batch_of([source_ids])
    encoded, states = model.encode(source, source_length)
    previous, tokens, total = mx.nd.array([BOS_ID]), [], 0.0
    for step in range(limit):
        logits, _, states = model.decode_step(previous, states, encoded)
        log_probs = mx.nd.log_softmax(logits, axis=-1).asnumpy()[0]
        token = int(log_probs.argmax()) if step < limit - 1 else EOS_ID
        total += float(log_probs[token])
        if token == EOS_ID:
            break
        tokens.append(token)
        previous = mx.nd.array([token])
    return tokens, total


def test_greedy_equals_manual_argmax_decoding(real_model):
    limits = np.array([9, 5, 11])
    source, source_length = batch_of(SOURCES)
    greedy = greedy_search(real_model, source, source_length, limits)
    ended_early = 0
    for hypothesis, source_ids, limit in zip(greedy, SOURCES, limits):
        tokens, score = manual_greedy(real_model, source_ids, limit)
        assert hypothesis.token_ids == tokens
        np.testing.assert_allclose(hypothesis.score, score, rtol=1e-4)
        ended_early += len(tokens) < limit - 1
    assert ended_early, "the fixture should produce at least one output that ends with its own </s>"


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_size_one_equals_greedy(real_model, alpha):
    limits = np.array([9, 5, 11])
    source, source_length = batch_of(SOURCES)
    greedy = greedy_search(real_model, source, source_length, limits)
    beam = beam_search(real_model, source, source_length, limits, beam_size=1, alpha=alpha)
    for g, b in zip(greedy, beam):
        assert b.token_ids == g.token_ids
        penalty = float(length_penalty(np.array(len(g.token_ids) + 1), alpha, 0.0))
        np.testing.assert_allclose(b.score * penalty, g.score, rtol=1e-5)


def test_beam_scores_are_the_model_log_probabilities(real_model):
    """Re-score each beam output with teacher forcing: score × length penalty = log p(tokens, </s>)."""
    source, source_length = batch_of(SOURCES)
    alpha, beta = 0.8, 2.0
    hypotheses = beam_search(real_model, source, source_length, np.array([8, 8, 8]), beam_size=4,
                             alpha=alpha, beta=beta)
    for row, hypothesis in enumerate(hypotheses):
        target = [BOS_ID] + hypothesis.token_ids
        labels = hypothesis.token_ids + [EOS_ID]
        logits = real_model(source[row:row + 1, :len(SOURCES[row])], source_length[row:row + 1],
                            mx.nd.array([target]))
        log_probs = mx.nd.log_softmax(logits, axis=-1).asnumpy()[0]
        expected = sum(log_probs[t, label] for t, label in enumerate(labels))
        penalty = float(length_penalty(np.array(len(labels)), alpha, beta))
        np.testing.assert_allclose(hypothesis.score * penalty, expected, rtol=1e-4)


def test_beam_search_of_a_sentence_does_not_depend_on_its_batch(real_model):
    source, source_length = batch_of(SOURCES)
    limits = np.array([8, 8, 8])
    together = beam_search(real_model, source, source_length, limits, beam_size=3)
    for row, source_ids in enumerate(SOURCES):
        alone_source, alone_length = batch_of([source_ids])
        alone, = beam_search(real_model, alone_source, alone_length, limits[:1], beam_size=3)
        assert alone.token_ids == together[row].token_ids
        np.testing.assert_allclose(alone.score, together[row].score, rtol=1e-4)


def test_beam_attention_has_a_row_per_output_token_and_a_column_per_source_position(real_model):
    source, source_length = batch_of(SOURCES)
    hypotheses = beam_search(real_model, source, source_length, np.array([8, 8, 8]), beam_size=3,
                             return_attention=True)
    for hypothesis, source_ids in zip(hypotheses, SOURCES):
        assert hypothesis.attention.shape == (len(hypothesis.token_ids), source.shape[1])
        assert np.all(hypothesis.attention[:, len(source_ids):] == 0)
        if len(hypothesis.token_ids):
            np.testing.assert_allclose(hypothesis.attention.sum(axis=1), 1.0, rtol=1e-4)


def test_translator_attention_shape_and_length_limits(real_model, tmp_path):
    from seq2seq.data.vocab import Vocabulary
    source_vocab = Vocabulary({t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>"] +
                                                           [f"s{i}" for i in range(11)])})
    target_vocab = Vocabulary({t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>"] +
                                                           [f"t{i}" for i in range(8)])})
    translator = Translator(real_model, source_vocab, target_vocab)
    sources = SOURCES + [[], list(range(4, 15)) + [4, 5]]
    results = translator.translate_ids(sources, DecodeOptions(beam_size=3, attention_matrix=True))
    assert len(results) == len(sources)
    for source_ids, result in zip(sources, results):
        used = min(len(source_ids), real_model.config.max_seq_len_source)
        assert result.attention.shape == (len(result.target_ids), used)
        assert result.source_truncated == (len(source_ids) > real_model.config.max_seq_len_source)
        assert len(result.target_ids) <= real_model.config.max_seq_len_target
        assert result.target_tokens == target_vocab.decode(result.target_ids)
    assert results[3].target_ids == []
    short = translator.translate_ids(SOURCES, DecodeOptions(beam_size=2, max_output_length=2))
    assert all(len(r.target_ids) <= 2 for r in short)


def test_max_output_length_rule():
    config = ModelConfig(source_vocab_size=5, target_vocab_size=5, rnn_num_hidden=4, max_seq_len_target=20,
                         length_ratio_mean=1.0, length_ratio_std=0.5)
    assert max_output_length(config, 3) == 3 * 2 + 2 + 1            # derived from the source, plus </s>
    assert max_output_length(config, 50) == 20 + 1                   # capped by the model
    assert max_output_length(config, 3, requested=4) == 4 + 1
    assert max_output_length(config, 3, requested=100) == 20 + 1


class StepOnly:
    """A model seen only through encode / decode_step: the search's generic path."""

    def __init__(self, model):
        self.encode, self.decode_step = model.encode, model.decode_step


@pytest.mark.parametrize("beam_size", [1, 3, 5])
def test_one_program_search_equals_the_stepwise_reference(real_model, beam_size):
    """The fused step program (decoder, selection, reordering in one graph) and the generic path (decode_step,
    then the selection program) give exactly the outputs of the step-by-step search they replaced."""
    from bench.reference_search import reference_beam_search

    source, source_length = batch_of(SOURCES)
    limits = np.array([9, 5, 11])
    expected = reference_beam_search(real_model, source, source_length, limits, beam_size, 0.8, 1.0, True)
    for model in (real_model, StepOnly(real_model)):
        found = beam_search(model, source, source_length, limits, beam_size, 0.8, 1.0, return_attention=True)
        for hypothesis, reference in zip(found, expected):
            assert hypothesis.token_ids == reference.token_ids
            np.testing.assert_allclose(hypothesis.score, reference.score, rtol=1e-5)
            np.testing.assert_allclose(hypothesis.attention, reference.attention, rtol=1e-5, atol=1e-6)


ATTENTION_CONFIGS = {
    "dot": {"rnn_attention_type": "dot"},
    "bilinear": {"rnn_attention_type": "bilinear"},
    "fixed": {"rnn_attention_type": "fixed"},
    "mlp-below-two-layers": {"num_layers_decoder": 2, "rnn_attention_in_upper_layers": True},
}


@pytest.mark.parametrize("name", sorted(ATTENTION_CONFIGS))
def test_the_step_program_reading_each_source_once_per_beam_equals_decode_step(name):
    """The step program's attention reads each sentence's encoded source once for its beam's rows; decode_step
    (the generic path) gets every array repeated per row. Same outputs for every attention type, also once a
    sentence has finished and left the batch (limit 5)."""
    config = ModelConfig(source_vocab_size=15, target_vocab_size=12, num_embed_source=8, num_embed_target=8,
                         rnn_num_hidden=12, rnn_attention_num_hidden=8, input_feeding=False, max_seq_len_source=10,
                         max_seq_len_target=10, **ATTENTION_CONFIGS[name])
    mx.random.seed(3)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(magnitude=3.0), mx.cpu())
    model.hybridize()
    source, source_length = batch_of(SOURCES)
    limits = np.array([9, 5, 11])
    for beam_size in (1, 4):
        expected = beam_search(StepOnly(model), source, source_length, limits, beam_size, 0.8, 1.0,
                               return_attention=True)
        found = beam_search(model, source, source_length, limits, beam_size, 0.8, 1.0, return_attention=True)
        for hypothesis, reference in zip(found, expected):
            assert hypothesis.token_ids == reference.token_ids
            np.testing.assert_allclose(hypothesis.score, reference.score, rtol=1e-5)
            np.testing.assert_allclose(hypothesis.attention, reference.attention, rtol=1e-5, atol=1e-6)
