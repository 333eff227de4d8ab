"""The whole-batch training programs against a step-by-step reference built from `decode_step`.

The programs unroll the decoder over the bucket's target length inside one graph (input feeding, scheduled
sampling) or run each decoder layer fused over the whole target; loss and gradients must be those of the loop.
"""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from seq2seq.data.batch import Batch
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel
from seq2seq.training.loss import MaskedCrossEntropy

SOURCE_VOCAB, TARGET_VOCAB = 21, 17
SOURCES = [[4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 4], [6, 6, 7, 8]]
TARGETS = [[5, 6, 7, 8], [9, 10], [11, 12, 13], [14, 15, 16, 4, 5, 6]]   # without <s> and </s>
TARGET_LENGTH = 8                                                         # the bucket: longest target + 2


def make_model(cell: str, layers: int, input_feeding: bool, hybridize: bool = True) -> Seq2SeqModel:
    config = ModelConfig(source_vocab_size=SOURCE_VOCAB, target_vocab_size=TARGET_VOCAB, num_embed_source=6,
                         num_embed_target=5, rnn_cell_type=cell, rnn_num_hidden=8, rnn_attention_num_hidden=6,
                         num_layers_encoder=layers, num_layers_decoder=layers, input_feeding=input_feeding,
                         max_seq_len_source=20, max_seq_len_target=20)
    mx.random.seed(5)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(magnitude=3.0), mx.cpu())
    if hybridize:
        model.hybridize()
    return model


def random_batch(seed: int = 0) -> Batch:
    """The fixed sentences with random ids on top, padded to one bucket."""
    rng = np.random.RandomState(seed)
    size = len(SOURCES)
    source = np.zeros((size, 7), dtype=np.float32)
    target_input = np.zeros((size, TARGET_LENGTH), dtype=np.float32)
    labels = np.zeros((size, TARGET_LENGTH), dtype=np.float32)
    for row, (s, t) in enumerate(zip(SOURCES, TARGETS)):
        source[row, :len(s)] = rng.randint(4, SOURCE_VOCAB, size=len(s))
        words = rng.randint(4, TARGET_VOCAB, size=len(t))
        target_input[row, :len(t) + 1] = [2] + list(words)
        labels[row, :len(t) + 1] = list(words) + [3]
    return Batch(source, np.array([len(s) for s in SOURCES], dtype=np.float32), target_input, labels)


def stepwise_logits(model, loaded, fed_ids=None):
    """Reference: logits `(tokens, vocab)` of the valid positions from a Python loop over decode_step, feeding
    the reference ids (or `fed_ids` `(batch, trg_len)` when given)."""
    encoded, states = model.encode(loaded.source, loaded.source_length)
    feed = loaded.target_input if fed_ids is None else fed_ids
    steps = []
    for t in range(feed.shape[1]):
        logits, _, states = model.decode_step(feed[:, t], states, encoded)
        steps.append(logits)
    flat = mx.nd.stack(*steps, axis=1).reshape((-3, -2))
    return mx.nd.take(flat, loaded.valid_positions)


def loss_and_gradients(model, compute_logits, labels):
    loss = MaskedCrossEntropy(0.1)
    for parameter in model.collect_params().values():
        parameter.zero_grad()
    with autograd.record():
        total, _, _ = loss(compute_logits(), labels)
    total.backward()
    gradients = {name: p.grad().asnumpy().copy() for name, p in model.collect_params().items()}
    return float(total.asscalar()), gradients


def assert_same_loss_and_gradients(model, program_logits, reference_logits, labels):
    loss_a, grads_a = loss_and_gradients(model, program_logits, labels)
    loss_b, grads_b = loss_and_gradients(model, reference_logits, labels)
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-5, atol=1e-5)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-5, err_msg=name)
    assert any(np.abs(g).sum() > 0 for g in grads_a.values())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("input_feeding", [True, False])
def test_training_program_equals_stepwise_loss_and_gradients(cell, layers, input_feeding):
    model = make_model(cell, layers, input_feeding)
    loaded = random_batch(seed=layers).load(mx.cpu())
    assert_same_loss_and_gradients(model, lambda: loaded.valid_logits(model),
                                   lambda: stepwise_logits(model, loaded), loaded.valid_labels)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("input_feeding", [True, False])
def test_scheduled_sampling_in_the_graph_feeds_the_seeded_choice(cell, input_feeding):
    """The ids fed inside the program are the reference where the mask says so and the arg-max of the model's
    own previous logits elsewhere, exactly as a Python loop with the same seeded mask; loss and gradients too."""
    model = make_model(cell, 2, input_feeding)
    batch = random_batch(seed=7)
    rng = np.random.RandomState(123)
    mask = np.ones(batch.target_input.shape, dtype=np.float32)
    for position in range(1, mask.shape[1]):
        mask[:, position] = rng.rand(mask.shape[0]) < 0.5
    batch.sample_mask = mask
    loaded = batch.load(mx.cpu())
    output = model.training_logits(loaded.source, loaded.source_length, loaded.target_input,
                                   loaded.valid_positions, loaded.sample_mask)
    # The reference loop: the same seeded mask, the arg-max taken in Python.
    encoded, states = model.encode(loaded.source, loaded.source_length)
    reference_ids = batch.target_input
    fed = [reference_ids[:, 0]]
    for t in range(reference_ids.shape[1] - 1):
        logits, _, states = model.decode_step(mx.nd.array(fed[-1]), states, encoded)
        predicted = logits.asnumpy().argmax(axis=1)
        fed.append(np.where(mask[:, t + 1] == 1, reference_ids[:, t + 1], predicted))
    expected_ids = np.stack(fed, axis=1)
    np.testing.assert_array_equal(output.fed_ids.asnumpy(), expected_ids)
    assert (expected_ids != reference_ids)[batch.labels != 0].any(), "the mask should replace some inputs"
    assert_same_loss_and_gradients(
        model, lambda: loaded.valid_logits(model),
        lambda: stepwise_logits(model, loaded, mx.nd.array(expected_ids)), loaded.valid_labels)


@pytest.mark.parametrize("input_feeding", [True, False])
def test_hybridized_programs_equal_imperative(input_feeding):
    hybrid = make_model("lstm", 2, input_feeding, hybridize=True)
    imperative = make_model("lstm", 2, input_feeding, hybridize=False)
    loaded = random_batch().load(mx.cpu())
    np.testing.assert_allclose(loaded.valid_logits(hybrid).asnumpy(), loaded.valid_logits(imperative).asnumpy(),
                               rtol=1e-5, atol=1e-5)


def test_one_program_per_target_length_sharing_the_parameters():
    model = make_model("lstm", 1, True)
    loaded = random_batch().load(mx.cpu())
    loaded.valid_logits(model)
    short = Batch(*(a[:, :5] if a.ndim == 2 and a.shape[1] == TARGET_LENGTH else a for a in (
        random_batch().source, random_batch().source_length, random_batch().target_input, random_batch().labels)))
    short.load(mx.cpu()).valid_logits(model)
    programs = [model.program(("train", n, False), None) for n in (TARGET_LENGTH, 5)]
    assert all(p is not None for p in programs) and programs[0] is not programs[1]
    shared = set(model.collect_params().values())
    for program in programs:
        assert set(program.collect_params().values()) == shared
