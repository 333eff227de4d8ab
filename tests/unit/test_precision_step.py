"""The precision-aware update step (seq2seq/training/precision.py) on CPU, with a stubbed loss scale on fp32.

fp16 itself needs a GPU (tests/gpu); the arithmetic that makes it correct does not: the gradients of a
loss-scaled backward are unscaled before the global norm is measured, so clipping and the update are those of
fp32; an overflow skips the update without counting it; the loss scale resumes exactly. And arg-max on
float16 logits gives exact ids above 2,048.
"""

import json
import os

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from seq2seq.data.batch_iterator import IteratorPosition
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel
from seq2seq.training import training_state as ts
from seq2seq.training.loss import MaskedCrossEntropy
from seq2seq.training.precision import DynamicLossScale, GradientStep
from seq2seq.training.trainer import StopTraining, TrainingHooks
from tests.unit.test_loss_and_schedule import build_trainer, parameters_of, save_initial_parameters
from tests.unit.test_training_programs import random_batch

LEARNING_RATE = 0.5
CLIP_NORM = 0.05   # well below the first batch's gradient norm: clipping fires


@pytest.fixture(scope="module")
def initial_parameters(tmp_path_factory):
    return save_initial_parameters(tmp_path_factory.mktemp("initial"), input_feeding=True)


def manual_clipped_sgd_step(tmp_path, parameters_file, clip_norm):
    """p - lr × min(1, clip / ‖g‖) × g with g the mean-token-loss gradient of the first batch, computed here
    without the trainer; also returns ‖g‖."""
    trainer = build_trainer(tmp_path, "manual", [mx.cpu(0)], parameters_file, label_smoothing=0.0)
    batch = next(trainer.setup.train_iter.epoch(IteratorPosition()))
    loaded = batch.load(mx.cpu(0))
    model = trainer.model
    with autograd.record():
        loss, _, _ = MaskedCrossEntropy(0.0)(model(loaded.source, loaded.source_length, loaded.target_input),
                                             loaded.labels)
    loss.backward()
    gradients = {name[len(model.prefix):]: p.grad().asnumpy() / batch.num_target_tokens
                 for name, p in model.collect_params().items()}
    norm = float(np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in gradients.values())))
    factor = min(1.0, clip_norm / norm)
    expected = {name[len(model.prefix):]: p.data().asnumpy() - LEARNING_RATE * factor *
                gradients[name[len(model.prefix):]] for name, p in model.collect_params().items()}
    return expected, norm


def one_update(tmp_path, name, parameters_file, loss_scale=None, **overrides):
    trainer = build_trainer(tmp_path, name, [mx.cpu(0)], parameters_file, label_smoothing=0.0,
                            learning_rate=LEARNING_RATE, **overrides)
    trainer.gradient_step.loss_scale = loss_scale
    state = trainer.fit()
    return trainer, state


def assert_parameters_close(ours, expected, rtol=1e-4, atol=1e-6):
    assert ours.keys() == expected.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], expected[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("scale", [2.0 ** 10, 2.0 ** 16])
def test_a_loss_scaled_clipped_update_is_the_fp32_clipped_update(tmp_path, initial_parameters, scale):
    """Clipping measures the gradients in true units: with a loss scale the update equals the manual fp32 one
    (before the fix, the scaled norm always fired the clip and the update came out scale times too small)."""
    expected, norm = manual_clipped_sgd_step(tmp_path, initial_parameters, CLIP_NORM)
    assert norm > 2 * CLIP_NORM, "the test needs clipping to fire"
    fp32, _ = one_update(tmp_path, "fp32", initial_parameters, gradient_clip_norm=CLIP_NORM)
    scaled, state = one_update(tmp_path, "scaled", initial_parameters, DynamicLossScale(scale=scale),
                               gradient_clip_norm=CLIP_NORM)
    assert state.num_updates == 1 and state.skipped_updates == 0
    assert_parameters_close(parameters_of(fp32), expected)
    assert_parameters_close(parameters_of(scaled), expected)
    initial = parameters_of(build_trainer(tmp_path, "initial", [mx.cpu(0)], initial_parameters))
    moved = np.sqrt(sum(((parameters_of(scaled)[k] - initial[k]) ** 2).sum() for k in initial))
    assert moved == pytest.approx(LEARNING_RATE * CLIP_NORM, rel=1e-3)   # the step has the clipped length


def test_a_loss_scaled_update_without_clipping_is_the_fp32_update(tmp_path, initial_parameters):
    expected, _ = manual_clipped_sgd_step(tmp_path, initial_parameters, clip_norm=float("inf"))
    scaled, _ = one_update(tmp_path, "scaled", initial_parameters, DynamicLossScale(scale=2.0 ** 12))
    assert_parameters_close(parameters_of(scaled), expected)


def test_element_wise_clip_gradient_sees_true_units(tmp_path, initial_parameters):
    """clip_gradient runs in the optimizer after the unscaling: a loss scale does not change the update."""
    fp32, _ = one_update(tmp_path, "fp32", initial_parameters, clip_gradient=0.01)
    scaled, _ = one_update(tmp_path, "scaled", initial_parameters, DynamicLossScale(scale=2.0 ** 14),
                           clip_gradient=0.01)
    assert_parameters_close(parameters_of(scaled), parameters_of(fp32))


def tiny_step(loss_scale, clip_norm=-1.0):
    mx.random.seed(0)
    net = gluon.nn.Dense(3, in_units=4)
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1}, update_on_kvstore=False)
    step = GradientStep(trainer, net.collect_params(), clip_norm, loss_scale=loss_scale)
    data = mx.nd.array(np.arange(8).reshape(2, 4) / 8.0)
    return net, step, data


def run_step(net, step, data):
    with autograd.record():
        head = (net(data) ** 2).sum()
    step.backward([head])
    return step.step()


def test_an_overflowing_step_is_skipped_and_halves_the_scale():
    net, step, data = tiny_step(DynamicLossScale(scale=2.0 ** 200))   # the head times the scale is inf in float32
    before = {name: p.data().asnumpy().copy() for name, p in net.collect_params().items()}
    result = run_step(net, step, data)
    assert not result.applied
    for name, p in net.collect_params().items():
        np.testing.assert_array_equal(p.data().asnumpy(), before[name])
    assert step.loss_scale.scale == 2.0 ** 199 and step.loss_scale.good_steps == 0
    step.loss_scale.scale = 2.0 ** 8
    result = run_step(net, step, data)
    assert result.applied and np.isfinite(result.grad_norm)
    assert any((p.data().asnumpy() != before[name]).any() for name, p in net.collect_params().items())


def test_the_scale_grows_after_the_growth_interval_and_stays_within_bounds():
    scale = DynamicLossScale(scale=2.0 ** 23, growth_interval=3)
    for _ in range(3):
        scale.update(overflow=False)
    assert scale.scale == 2.0 ** 24 and scale.good_steps == 0
    for _ in range(3):
        scale.update(overflow=False)
    assert scale.scale == 2.0 ** 24                                   # max_scale
    scale.update(overflow=True)
    assert scale.scale == 2.0 ** 23 and scale.good_steps == 0
    assert DynamicLossScale.from_state_dict(scale.state_dict()) == scale
    with pytest.raises(ValueError):
        DynamicLossScale.from_state_dict(dict(scale.state_dict(), scale=float("nan")))


def test_the_global_norm_is_in_true_units():
    """The measured norm of a loss-scaled backward is that of the unscaled gradients."""
    plain_net, plain, data = tiny_step(None, clip_norm=1e9)
    scaled_net, scaled, _ = tiny_step(DynamicLossScale(scale=2.0 ** 10), clip_norm=1e9)
    a = run_step(plain_net, plain, data)
    b = run_step(scaled_net, scaled, data)
    assert a.applied and b.applied and a.clip_factor == b.clip_factor == 1.0
    assert b.grad_norm == pytest.approx(a.grad_norm, rel=1e-5)


class ScriptedLossScale(DynamicLossScale):
    """A stub: the scale for each step comes from `script` (2^128 is inf in float32: that step overflows)."""

    def __init__(self, script):
        super().__init__(scale=script[0])
        self.script = list(script[1:])

    def update(self, overflow: bool) -> None:
        super().update(overflow)
        if self.script:
            self.scale = self.script.pop(0)

    def state_dict(self) -> dict:
        return DynamicLossScale(self.scale, self.good_steps).state_dict()


def test_a_skipped_update_is_not_counted(tmp_path, initial_parameters):
    """The overflowed batch is consumed but no update is counted, logged as one, or passed to on_update."""
    seen = []
    hooks = TrainingHooks(on_update=lambda state: seen.append((state.num_updates, state.batch_index)))
    trainer = build_trainer(tmp_path, "skip", [mx.cpu(0)], initial_parameters, hooks=hooks, batch_size=4,
                            max_num_batches=2, checkpoint_frequency_num_batches=2)
    trainer.gradient_step.loss_scale = ScriptedLossScale([2.0 ** 10, 2.0 ** 128, 2.0 ** 10, 2.0 ** 10])
    state = trainer.fit()
    assert (state.num_updates, state.skipped_updates, state.batch_index) == (2, 1, 3)
    assert seen == [(1, 1), (2, 3)]
    assert [record["updates"] for record in state.history] == [2]
    saved = json.load(open(os.path.join(ts.state_dir(trainer.setup.checkpoint_dir), ts.STATE_FILE)))
    assert saved["skipped_updates"] == 1


def test_the_loss_scale_is_saved_and_resumed_exactly(tmp_path, initial_parameters):
    """Stopped after 3 updates and resumed to 5: the same parameters and the same loss-scale state as 5 updates
    in one run (the scale doubles every 2 updates here, so a scale that is not restored differs at the end)."""
    def scale():
        return DynamicLossScale(scale=2.0 ** 10, growth_interval=2)

    settings = dict(batch_size=4, max_num_batches=5, checkpoint_frequency_num_batches=100,
                    gradient_clip_norm=CLIP_NORM)
    whole = build_trainer(tmp_path, "whole", [mx.cpu(0)], initial_parameters, **settings)
    whole.gradient_step.loss_scale = scale()
    whole_state = whole.fit()

    def stop_at_3(state):
        if state.num_updates == 3:
            raise StopTraining()

    first = build_trainer(tmp_path, "split", [mx.cpu(0)], initial_parameters, hooks=TrainingHooks(stop_at_3),
                          **settings)
    first.gradient_step.loss_scale = scale()
    stopped = first.fit()
    assert stopped.num_updates == 3 and stopped.loss_scale == {**scale().state_dict(), "scale": 2.0 ** 11,
                                                               "good_steps": 1}
    second = build_trainer(tmp_path, "split", [mx.cpu(0)], initial_parameters, **settings)
    second.gradient_step.loss_scale = scale()
    resumed_state = second.fit()
    assert resumed_state.num_updates == 5
    assert second.gradient_step.loss_scale == whole.gradient_step.loss_scale
    assert second.gradient_step.loss_scale.scale == 2.0 ** 12
    assert resumed_state.loss_scale == whole_state.loss_scale
    assert_parameters_close(parameters_of(second), parameters_of(whole), rtol=1e-6, atol=1e-7)


def test_a_checkpoint_without_the_new_fields_still_resumes(tmp_path, initial_parameters):
    """Checkpoints written before skipped_updates and loss_scale existed load with their defaults."""
    trainer = build_trainer(tmp_path, "old", [mx.cpu(0)], initial_parameters, max_num_batches=1)
    trainer.fit()
    path = os.path.join(ts.state_dir(trainer.setup.checkpoint_dir), ts.STATE_FILE)
    record = json.load(open(path))
    del record["skipped_updates"], record["loss_scale"]
    with open(path, "w") as stream:
        json.dump(record, stream)
    state = ts.load_training_state(trainer.setup.checkpoint_dir)
    assert state.num_updates == 1 and state.skipped_updates == 0 and state.loss_scale is None


# ----- arg-max on float16 logits -----

@pytest.mark.parametrize("gold", [2049, 2051, 4097])
def test_accuracy_on_float16_logits_counts_ids_above_2048(gold):
    """float16 cannot hold 2049 (it rounds to 2048): the accuracy must take the arg-max in float32."""
    vocab = 4100
    assert float(np.float16(gold)) != gold
    logits = np.zeros((3, vocab), dtype=np.float16)
    labels = np.array([gold, gold - 1, 7], dtype=np.float32)
    for row, label in enumerate(labels):
        logits[row, int(label)] = 4.0
    loss, nll, correct = MaskedCrossEntropy(0.0)(mx.nd.array(logits, dtype="float16"), mx.nd.array(labels))
    assert correct.asscalar() == 3
    reference, _, _ = MaskedCrossEntropy(0.0)(mx.nd.array(logits.astype(np.float32)), mx.nd.array(labels))
    assert loss.asscalar() == pytest.approx(reference.asscalar(), rel=1e-3)


class _Float16Logits(gluon.nn.Dense):
    """An output layer whose float16 logits put the maximum on `target` for every row (CPU has no float16
    matrix product, so the real layer cannot run in float16 here)."""

    def __init__(self, target: int, vocab: int, in_units: int):
        super().__init__(vocab, flatten=False, in_units=in_units, prefix="out_")
        self._target, self._vocab = target, vocab

    def hybrid_forward(self, F, x, weight, bias=None):
        rows = F.sum(F.zeros_like(x), axis=-1) + self._target                          # (rows,)
        return F.cast(F.one_hot(rows, depth=self._vocab) * 4.0, dtype="float16")        # (rows, vocab)


@pytest.mark.parametrize("target", [2049, 3001])
def test_scheduled_sampling_feeds_exact_ids_from_float16_logits(target):
    """The arg-max fed back in the unrolled program is taken in float32: id 2049 stays 2049, not 2048."""
    vocab = 3100
    config = ModelConfig(source_vocab_size=21, target_vocab_size=vocab, num_embed_source=6, num_embed_target=5,
                         rnn_num_hidden=8, rnn_attention_num_hidden=6, input_feeding=True,
                         max_seq_len_source=20, max_seq_len_target=20)
    mx.random.seed(5)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(), mx.cpu())
    decoder = model.decoder
    decoder.output_layer = _Float16Logits(target, vocab, decoder.output_layer._in_units)
    decoder.output_layer.initialize(ctx=mx.cpu())
    batch = random_batch(seed=3)
    mask = np.ones(batch.target_input.shape, dtype=np.float32)
    mask[:, 2:] = 0                                                    # positions 2.. are fed the arg-max
    batch.sample_mask = mask
    loaded = batch.load(mx.cpu())
    output = model.training_logits(loaded.source, loaded.source_length, loaded.target_input,
                                   loaded.valid_positions, loaded.sample_mask)
    fed = output.fed_ids.asnumpy()
    np.testing.assert_array_equal(fed[:, :2], batch.target_input[:, :2])
    assert (fed[:, 2:] == target).all()


def test_the_global_norm_covers_gradients_of_several_types():
    """One multi_sum_sq per gradient type (AMP may leave some parameters in another type)."""
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(3, in_units=4), gluon.nn.Dense(2, in_units=3))
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    net[1].cast("float64")
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1}, update_on_kvstore=False)
    step = GradientStep(trainer, net.collect_params(), clip_norm=1e9)
    with autograd.record():
        head = (net[1](net[0](mx.nd.ones((2, 4))).astype("float64")) ** 2).sum()
    step.backward([head])
    trainer.allreduce_grads()
    expected = np.sqrt(sum((p.grad().asnumpy().astype(np.float64) ** 2).sum()
                           for p in net.collect_params().values()))
    assert step.global_norm() == pytest.approx(expected, rel=1e-5)
