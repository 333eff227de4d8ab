"""The masked loss, the learning-rate schedules, and one data-parallel update (one context vs two)."""

import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from seq2seq.constants import EOS_ID, PAD_ID
from seq2seq.data.batch_iterator import BucketBatchIterator, IteratorPosition
from seq2seq.data.dataset import ParallelData
from seq2seq.data.vocab import Vocabulary
from seq2seq.hyperparameters import Hyperparameters
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel
from seq2seq.training.loss import MaskedCrossEntropy, fused_softmax_loss
from seq2seq.training.lr_schedule import LearningRateSchedule, schedule_from_hyperparameters
from seq2seq.training.trainer import Seq2SeqTrainer, TrainingSetup

VOCAB = 9


def log_softmax(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


LABELS = np.array([[4, 5, EOS_ID, PAD_ID], [6, EOS_ID, PAD_ID, PAD_ID], [7, 8, 4, EOS_ID]], dtype=np.float32)


def random_logits(seed=0):
    return np.random.RandomState(seed).randn(3, 4, VOCAB).astype(np.float32)


# ----- MaskedCrossEntropy -----

@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_loss_matches_a_direct_computation(smoothing):
    logits = random_logits()
    loss, nll, correct = MaskedCrossEntropy(smoothing)(mx.nd.array(logits), mx.nd.array(LABELS))
    log_probs = log_softmax(logits.astype(np.float64))
    mask = LABELS != PAD_ID
    token_nll = -np.take_along_axis(log_probs, LABELS.astype(int)[..., None], axis=-1)[..., 0]
    # gold word 1 - ε, every other word ε / (vocab - 1): the distribution of the fused training softmax
    token_others = (-log_probs.sum(axis=-1) - token_nll) / (VOCAB - 1)
    expected_loss = ((1 - smoothing) * token_nll + smoothing * token_others)[mask].sum()
    np.testing.assert_allclose(loss.asscalar(), expected_loss, rtol=1e-5)
    np.testing.assert_allclose(nll.asscalar(), token_nll[mask].sum(), rtol=1e-5)
    assert correct.asscalar() == ((logits.argmax(-1) == LABELS) & mask).sum()


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_padded_target_positions_add_zero_loss_and_zero_gradient(smoothing):
    logits = random_logits(1)
    noisy = logits.copy()
    noisy[LABELS == PAD_ID] = 1e3 * np.random.RandomState(2).randn(int((LABELS == PAD_ID).sum()), VOCAB)
    criterion = MaskedCrossEntropy(smoothing)
    clean_values = [v.asscalar() for v in criterion(mx.nd.array(logits), mx.nd.array(LABELS))]
    noisy_values = [v.asscalar() for v in criterion(mx.nd.array(noisy), mx.nd.array(LABELS))]
    np.testing.assert_allclose(noisy_values, clean_values, rtol=1e-6)
    variable = mx.nd.array(logits)
    variable.attach_grad()
    with autograd.record():
        loss, _, _ = criterion(variable, mx.nd.array(LABELS))
    loss.backward()
    gradient = variable.grad.asnumpy()
    assert np.all(gradient[LABELS == PAD_ID] == 0.0)
    assert np.all(np.abs(gradient[LABELS != PAD_ID]).sum(axis=-1) > 0)


def test_loss_is_additive_over_batch_splits():
    """Sums, not means: shards of a batch add up to the whole (the trainer divides by the token count once)."""
    logits = random_logits(3)
    criterion = MaskedCrossEntropy(0.1)
    whole = criterion(mx.nd.array(logits), mx.nd.array(LABELS))[0].asscalar()
    parts = sum(criterion(mx.nd.array(logits[a:b]), mx.nd.array(LABELS[a:b]))[0].asscalar()
                for a, b in ((0, 1), (1, 3)))
    np.testing.assert_allclose(parts, whole, rtol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_fused_training_loss_gradient_and_nll(smoothing):
    """The training loss's gradient is scale × (softmax − target), the target giving the gold label 1 − ε and
    every other label ε / (vocab − 1); its nll is the unsmoothed negative log-likelihood."""
    mask = LABELS != PAD_ID
    logits = random_logits(4)[mask]                                       # (tokens, vocab): valid positions
    labels = LABELS[mask]
    variable = mx.nd.array(logits)
    variable.attach_grad()
    with autograd.record():
        head, nll = fused_softmax_loss(variable, mx.nd.array(labels), smoothing, 0.25)
    head.backward()
    probabilities = np.exp(log_softmax(logits.astype(np.float64)))
    target = np.full(logits.shape, smoothing / (VOCAB - 1))
    target[np.arange(len(labels)), labels.astype(int)] = 1.0 - smoothing
    np.testing.assert_allclose(variable.grad.asnumpy(), 0.25 * (probabilities - target), rtol=1e-4, atol=1e-7)
    expected_nll = -np.log(probabilities[np.arange(len(labels)), labels.astype(int)]).sum()
    np.testing.assert_allclose(nll.asscalar(), expected_nll, rtol=1e-5)


# ----- learning-rate schedules -----

def test_warmup_rises_linearly_then_holds():
    schedule = LearningRateSchedule("plateau_reduce", base_rate=0.01, updates_per_checkpoint=100, warmup=4)
    np.testing.assert_allclose([schedule.rate(t) for t in range(6)], [0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01])


@pytest.mark.parametrize("kind,expected", [
    ("fixed_rate_inv_t", lambda t, horizon: 0.1 / (1 + t / horizon)),
    ("fixed_rate_inv_sqrt_t", lambda t, horizon: 0.1 / math.sqrt(1 + 3 * t / horizon)),
])
def test_decaying_schedules(kind, expected):
    schedule = LearningRateSchedule(kind, base_rate=0.1, updates_per_checkpoint=50, half_life=4)
    for t in (0, 1, 100, 200, 1000):
        assert schedule.rate(t) == pytest.approx(expected(t, 200))
    # The horizon is half_life checkpoints: inv_t halves the rate there.
    if kind == "fixed_rate_inv_t":
        assert schedule.rate(200) == pytest.approx(0.05)
    assert not schedule.on_checkpoint(False)


def test_plateau_reduce_after_threshold_checkpoints_without_improvement():
    schedule = LearningRateSchedule("plateau_reduce", base_rate=0.2, updates_per_checkpoint=10, factor=0.5,
                                    threshold=2)
    outcomes = [True, False, True, False, False, False, False, True]
    reduced = [schedule.on_checkpoint(improved) for improved in outcomes]
    assert reduced == [False, False, False, False, True, False, True, False]
    assert schedule.rate(12345) == pytest.approx(0.05)
    restored = LearningRateSchedule.from_state_dict(schedule.state_dict())
    assert restored == schedule
    assert restored.on_checkpoint(False) is False and restored.on_checkpoint(False) is True
    assert restored.rate(0) == pytest.approx(0.025)


@pytest.mark.parametrize("warmup", [0, 1, 4])
def test_linear_decay_reaches_zero_at_the_last_update(warmup):
    hp = Hyperparameters(lr_scheduler_type="linear_decay", learning_rate=0.01, max_num_batches=20,
                         warmup_num_batches=warmup)
    schedule = schedule_from_hyperparameters(hp)
    rates = [schedule.rate(t) for t in range(25)]
    peak = max(warmup - 1, 0)
    assert rates[peak] == pytest.approx(0.01)
    assert rates[19] == 0.0 and rates[18] > 0.0 and rates[24] == 0.0
    decay = np.diff(rates[peak:20])
    np.testing.assert_allclose(decay, decay[0])  # a straight line from the peak to zero
    assert decay[0] == pytest.approx(-0.01 / (19 - peak))
    np.testing.assert_allclose(rates[:peak], [0.01 * (t + 1) / warmup for t in range(peak)])
    assert not schedule.on_checkpoint(False)


def test_linear_decay_state_round_trip_and_old_states_load():
    schedule = LearningRateSchedule("linear_decay", base_rate=0.1, updates_per_checkpoint=5, total_updates=11)
    assert LearningRateSchedule.from_state_dict(schedule.state_dict()).rate(5) == pytest.approx(0.05)
    old_state = {k: v for k, v in schedule.state_dict().items() if k != "total_updates"}
    old = LearningRateSchedule.from_state_dict(dict(old_state, kind="plateau_reduce"))
    assert old.rate(100) == pytest.approx(0.1)


def test_schedule_from_hyperparameters():
    hp = Hyperparameters(lr_scheduler_type="fixed_rate_inv_sqrt_t", learning_rate=0.02,
                         checkpoint_frequency_num_batches=30, fixed_rate_lr_half_life=3, warmup_num_batches=5)
    schedule = schedule_from_hyperparameters(hp)
    assert (schedule.kind, schedule.base_rate, schedule.updates_per_checkpoint, schedule.half_life,
            schedule.warmup) == ("fixed_rate_inv_sqrt_t", 0.02, 30, 3, 5)


# ----- one update: one context vs two -----

def tiny_pairs(seed=0, count=24):
    rng = np.random.RandomState(seed)
    sources = [rng.randint(4, 12, rng.randint(2, 7)).astype(np.int32) for _ in range(count)]
    return ParallelData(sources, [s[::-1].copy() for s in sources])


def build_trainer(tmp_path, name, contexts, parameters_file, hooks=None, **hp_overrides) -> Seq2SeqTrainer:
    settings = dict(optimizer_type="sgd", learning_rate=0.5, clip_gradient=-1.0, label_smoothing=0.1,
                    batch_size=12, checkpoint_frequency_num_batches=1000, log_frequency_num_batches=1000,
                    max_num_batches=1, bleu_sample_size=0, seed=3)
    settings.update(hp_overrides)
    hp = Hyperparameters(**settings)
    config = ModelConfig(source_vocab_size=12, target_vocab_size=12, num_embed_source=8, num_embed_target=8,
                         rnn_num_hidden=10, rnn_attention_num_hidden=6, input_feeding=hp.input_feeding)
    model = Seq2SeqModel(config)
    model.load_parameters(parameters_file, ctx=contexts)
    model.hybridize()
    data = tiny_pairs()
    buckets = [(6, 7)]
    vocab = Vocabulary({t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(8)])})
    setup = TrainingSetup(hp=hp, model=model, contexts=contexts,
                          train_iter=BucketBatchIterator(data, buckets, hp.batch_size, hp.seed,
                                                         min_batch_size=len(contexts)),
                          validation_iter=BucketBatchIterator(data, buckets, 24, 0, shuffle=False),
                          validation_data=data, source_vocab=vocab, target_vocab=vocab,
                          checkpoint_dir=str(tmp_path / name / "checkpoints"),
                          output_data_dir=str(tmp_path / name / "output"), metric_printer=lambda line: None,
                          hooks=hooks)
    return Seq2SeqTrainer(setup)


def save_initial_parameters(directory, input_feeding: bool) -> str:
    config = ModelConfig(source_vocab_size=12, target_vocab_size=12, num_embed_source=8, num_embed_target=8,
                         rnn_num_hidden=10, rnn_attention_num_hidden=6, input_feeding=input_feeding)
    mx.random.seed(5)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(magnitude=2.34), mx.cpu())
    path = str(directory / f"initial-{input_feeding}.params")
    model.save_parameters(path)
    return path


def parameters_of(trainer: Seq2SeqTrainer) -> dict:
    return {name[len(trainer.model.prefix):]: p.data(mx.cpu(0)).asnumpy()
            for name, p in trainer.model.collect_params().items()}


def expected_sgd_step(tmp_path, parameters_file, learning_rate, smoothing, input_feeding=False) -> dict:
    """p - lr × ∇(loss sum / target tokens) on the first training batch, computed without the trainer."""
    trainer = build_trainer(tmp_path, "manual", [mx.cpu(0)], parameters_file, label_smoothing=smoothing,
                            input_feeding=input_feeding)
    batch = next(trainer.setup.train_iter.epoch(IteratorPosition()))
    loaded = batch.load(mx.cpu(0))
    model = trainer.model
    with autograd.record():
        loss, _, _ = MaskedCrossEntropy(smoothing)(model(loaded.source, loaded.source_length,
                                                         loaded.target_input), loaded.labels)
    loss.backward()
    return {name[len(model.prefix):]: p.data().asnumpy() - learning_rate * p.grad().asnumpy() / batch.num_target_tokens
            for name, p in model.collect_params().items()}


@pytest.mark.parametrize("input_feeding", [False, True])
def test_two_cpu_contexts_make_the_same_update_as_one(tmp_path, input_feeding):
    """Both equal p - lr × ∇(mean token loss), computed here without the trainer (no smoothing: one definition)."""
    initial_parameters = save_initial_parameters(tmp_path, input_feeding)
    settings = dict(input_feeding=input_feeding, label_smoothing=0.0)
    one = build_trainer(tmp_path, "one", [mx.cpu(0)], initial_parameters, **settings)
    two = build_trainer(tmp_path, "two", [mx.cpu(0), mx.cpu(1)], initial_parameters, **settings)
    assert one.fit().num_updates == 1 and two.fit().num_updates == 1
    after_one, after_two = parameters_of(one), parameters_of(two)
    expected = expected_sgd_step(tmp_path, initial_parameters, 0.5, 0.0, input_feeding)
    before = parameters_of(build_trainer(tmp_path, "before", [mx.cpu(0)], initial_parameters, **settings))
    for name, value in expected.items():
        np.testing.assert_allclose(after_one[name], value, rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(after_two[name], after_one[name], rtol=1e-4, atol=1e-6, err_msg=name)
        # The replica on the second context holds the same values.
        second = two.model.collect_params()[two.model.prefix + name].data(mx.cpu(1)).asnumpy()
        np.testing.assert_array_equal(second, after_two[name])
    moved = [name for name in before if np.abs(after_one[name] - before[name]).max() > 1e-6]
    assert len(moved) > len(before) // 2


def test_two_cpu_contexts_agree_with_label_smoothing_and_adam(tmp_path):
    initial_parameters = save_initial_parameters(tmp_path, False)
    settings = dict(input_feeding=False, label_smoothing=0.1, optimizer_type="adam", learning_rate=0.01,
                    max_num_batches=3)
    one = build_trainer(tmp_path, "one", [mx.cpu(0)], initial_parameters, **settings)
    two = build_trainer(tmp_path, "two", [mx.cpu(0), mx.cpu(1)], initial_parameters, **settings)
    assert one.fit().num_updates == 3 and two.fit().num_updates == 3
    after_one, after_two = parameters_of(one), parameters_of(two)
    for name in after_one:
        np.testing.assert_allclose(after_two[name], after_one[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_global_norm_clipping_is_the_same_on_two_contexts(tmp_path):
    initial_parameters = save_initial_parameters(tmp_path, False)
    settings = dict(gradient_clip_norm=0.01, optimizer_type="sgd", learning_rate=0.5, input_feeding=False)
    one = build_trainer(tmp_path, "one", [mx.cpu(0)], initial_parameters, **settings)
    two = build_trainer(tmp_path, "two", [mx.cpu(0), mx.cpu(1)], initial_parameters, **settings)
    one.fit()
    two.fit()
    unclipped = expected_sgd_step(tmp_path, initial_parameters, 0.5, 0.1)
    before = parameters_of(build_trainer(tmp_path, "before", [mx.cpu(0)], initial_parameters, input_feeding=False))
    after_one, after_two = parameters_of(one), parameters_of(two)
    step_norm = math.sqrt(sum(((after_one[n] - before[n]) ** 2).sum() for n in before))
    unclipped_norm = math.sqrt(sum(((unclipped[n] - before[n]) ** 2).sum() for n in before))
    assert unclipped_norm > 0.5 * 0.01 * 2, "the test needs a gradient larger than the clipping norm"
    assert step_norm == pytest.approx(0.5 * 0.01, rel=1e-3)   # lr × the clipping norm
    for name in before:
        np.testing.assert_allclose(after_two[name], after_one[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_validation_perplexity_and_accuracy_match_a_direct_computation():
    from seq2seq.training.evaluation import perplexity_and_accuracy
    data = tiny_pairs(seed=4, count=30)
    iterator = BucketBatchIterator(data, [(3, 4), (6, 7)], 8, 0, shuffle=False)
    config = ModelConfig(source_vocab_size=12, target_vocab_size=12, num_embed_source=8, num_embed_target=8,
                         rnn_num_hidden=10, rnn_attention_num_hidden=6, embed_dropout_source=0.5,
                         rnn_decoder_hidden_dropout=0.5)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(), mx.cpu())
    model.hybridize()
    nll, correct, tokens = 0.0, 0, 0
    for batch in iterator.epoch(IteratorPosition()):
        loaded = batch.load(mx.cpu())
        log_probs = log_softmax(model(loaded.source, loaded.source_length, loaded.target_input).asnumpy()
                                .astype(np.float64))
        mask = batch.labels != PAD_ID
        labels = batch.labels.astype(int)
        nll -= np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0][mask].sum()
        correct += int(((log_probs.argmax(-1) == labels) & mask).sum())
        tokens += int(mask.sum())
    assert tokens == sum(len(t) + 1 for t in data.targets)
    metrics = perplexity_and_accuracy(model, iterator, mx.cpu())
    # Dropout is off outside training: the metrics are deterministic and equal the direct computation.
    assert metrics == perplexity_and_accuracy(model, iterator, mx.cpu())
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)
    assert metrics["accuracy"] == pytest.approx(correct / tokens)
