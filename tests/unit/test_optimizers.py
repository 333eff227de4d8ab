"""Adam's beta/epsilon and Adadelta (seq2seq/training/optimizers.py) against float64 numpy references of the
published update rules, through the job's own update path (gluon.Trainer + precision.GradientStep), with weight
decay, element-wise clipping and global-norm clipping (rescale_grad) all taking part."""

import pickle

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from seq2seq.hyperparameters import Hyperparameters
from seq2seq.training.optimizers import Adadelta, create_optimizer, optimizer_parameters
from seq2seq.training.precision import DynamicLossScale, GradientStep
from tests.unit.test_loss_and_schedule import build_trainer, save_initial_parameters

SHAPE = (6, 5)
NUM_STEPS = 5


def gradients(seed: int, num_steps: int = NUM_STEPS):
    """A different gradient for every step; large enough for the element-wise and the norm clip to bite."""
    rng = np.random.RandomState(seed)
    return [rng.normal(0.0, 1.0, SHAPE) * (1 + step) for step in range(num_steps)]


def run_updates(optimizer, initial: np.ndarray, steps, clip_norm: float = 0.0, loss_scale: float = None,
                trainer: gluon.Trainer = None, parameter: gluon.Parameter = None):
    """The weights after each update of `optimizer` on one float32 parameter whose loss is sum(w * G_t), so that
    its gradient at step t is G_t exactly (multiplied by the loss scale when there is one)."""
    if parameter is None:
        parameter = gluon.Parameter("w", shape=SHAPE)
        parameter.initialize(mx.init.Constant(0), ctx=mx.cpu())
        parameter.set_data(mx.nd.array(initial))
        trainer = gluon.Trainer([parameter], optimizer, update_on_kvstore=False, kvstore="local")
    step = GradientStep(trainer, [parameter], clip_norm, 1,
                        DynamicLossScale(scale=loss_scale) if loss_scale else None)
    weights = []
    for gradient in steps:
        with autograd.record():
            head = mx.nd.sum(parameter.data() * mx.nd.array(gradient))
        step.backward([head])
        assert step.step().applied
        weights.append(parameter.data().asnumpy().astype(np.float64))
    return weights, trainer, parameter


def effective_gradient(gradient, weight, wd, clip_gradient, clip_norm):
    """What every optimizer sees: the global-norm clip (rescale_grad), + wd * w, then the element-wise clip."""
    norm = np.sqrt((gradient ** 2).sum())
    g = gradient * (min(1.0, clip_norm / norm) if clip_norm > 0 else 1.0) + wd * weight
    return np.clip(g, -clip_gradient, clip_gradient) if clip_gradient > 0 else g


def reference_adam(initial, steps, lr, beta1, beta2, epsilon, wd=0.0, clip_gradient=-1.0, clip_norm=0.0):
    """Kingma & Ba 2015, algorithm 1 with the bias corrections folded into the step size (their section 2, the
    form MXNet's adam_update implements): epsilon is their ε̂, added to the uncorrected sqrt(v)."""
    w = initial.astype(np.float64).copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    out = []
    for t, gradient in enumerate(steps, start=1):
        g = effective_gradient(gradient, w, wd, clip_gradient, clip_norm)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        step_size = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        w = w - step_size * m / (np.sqrt(v) + epsilon)
        out.append(w.copy())
    return out


def reference_adam_algorithm1(initial, steps, lr, beta1, beta2, epsilon_hat):
    """Kingma & Ba's algorithm 1 literally (bias-corrected moments, ε added to their corrected root), with the ε
    that corresponds to ε̂ at each step (ε = ε̂ / sqrt(1 - beta2^t)): an independent check of the folding."""
    w = initial.astype(np.float64).copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    out = []
    for t, g in enumerate(steps, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + epsilon_hat / np.sqrt(1 - beta2 ** t))
        out.append(w.copy())
    return out


def reference_adadelta(initial, steps, lr, rho, epsilon, wd=0.0, clip_gradient=-1.0, clip_norm=0.0):
    """Zeiler 2012, algorithm 1, the update multiplied by lr (1.0 = the paper's rule)."""
    w = initial.astype(np.float64).copy()
    mean_g2, mean_dx2 = np.zeros_like(w), np.zeros_like(w)
    out = []
    for gradient in steps:
        g = effective_gradient(gradient, w, wd, clip_gradient, clip_norm)
        mean_g2 = rho * mean_g2 + (1 - rho) * g * g
        dx = -np.sqrt(mean_dx2 + epsilon) / np.sqrt(mean_g2 + epsilon) * g
        mean_dx2 = rho * mean_dx2 + (1 - rho) * dx * dx
        w = w + lr * dx
        out.append(w.copy())
    return out


def initial_weights():
    return np.random.RandomState(0).normal(0.0, 0.5, SHAPE)


def assert_steps_close(ours, expected, rtol=2e-5, atol=1e-6):
    assert len(ours) == len(expected)
    for step, (a, b) in enumerate(zip(ours, expected), start=1):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"after update {step}")


ADAM = dict(adam_beta1=0.8, adam_beta2=0.95, adam_epsilon=1e-3)      # far from the defaults: each one matters


@pytest.mark.parametrize("extra", [dict(clip_gradient=-1.0),
                                   dict(weight_decay=0.1, clip_gradient=1.5, gradient_clip_norm=4.0)],
                         ids=["plain", "wd+clip+norm-clip"])
def test_adam_with_its_beta_and_epsilon_matches_the_published_rule(extra):
    hp = Hyperparameters(optimizer_type="adam", learning_rate=0.01, **ADAM, **extra)
    steps, initial = gradients(1), initial_weights()
    ours, _, _ = run_updates(create_optimizer(hp), initial, steps, clip_norm=hp.gradient_clip_norm)
    expected = reference_adam(initial, steps, 0.01, 0.8, 0.95, 1e-3, wd=hp.weight_decay,
                              clip_gradient=hp.clip_gradient, clip_norm=hp.gradient_clip_norm)
    assert_steps_close(ours, expected)
    # epsilon is big enough here that another reading of it (the defaults, or ε on the corrected root) differs
    others = reference_adam(initial, steps, 0.01, 0.9, 0.999, 1e-8, wd=hp.weight_decay,
                            clip_gradient=hp.clip_gradient, clip_norm=hp.gradient_clip_norm)
    assert np.abs(others[-1] - ours[-1]).max() > 1e-3


def test_the_folded_adam_form_is_algorithm_1_with_the_corresponding_epsilon():
    steps, initial = gradients(2), initial_weights()
    hp = Hyperparameters(optimizer_type="adam", learning_rate=0.01, clip_gradient=-1.0, **ADAM)
    ours, _, _ = run_updates(create_optimizer(hp), initial, steps)
    assert_steps_close(ours, reference_adam_algorithm1(initial, steps, 0.01, 0.8, 0.95, 1e-3))


@pytest.mark.parametrize("lr, extra", [(1.0, dict(clip_gradient=-1.0)), (0.5, dict(clip_gradient=-1.0)),
                                       (1.0, dict(weight_decay=0.1, clip_gradient=1.5, gradient_clip_norm=4.0))],
                         ids=["paper", "lr-0.5", "wd+clip+norm-clip"])
def test_adadelta_matches_zeilers_rule(lr, extra):
    hp = Hyperparameters(optimizer_type="adadelta", learning_rate=lr, adadelta_rho=0.9, adadelta_epsilon=1e-4,
                         **extra)
    steps, initial = gradients(3), initial_weights()
    ours, _, _ = run_updates(create_optimizer(hp), initial, steps, clip_norm=hp.gradient_clip_norm)
    expected = reference_adadelta(initial, steps, lr, 0.9, 1e-4, wd=hp.weight_decay,
                                  clip_gradient=hp.clip_gradient, clip_norm=hp.gradient_clip_norm)
    assert_steps_close(ours, expected)
    with_defaults = reference_adadelta(initial, steps, lr, 0.95, 1e-6, wd=hp.weight_decay,
                                       clip_gradient=hp.clip_gradient, clip_norm=hp.gradient_clip_norm)
    assert np.abs(with_defaults[-1] - ours[-1]).max() > 1e-3   # rho and epsilon took effect


@pytest.mark.parametrize("optimizer_type", ["adam", "adadelta"])
def test_a_loss_scaled_update_is_the_unscaled_one(optimizer_type):
    """fp16's path: gradients multiplied by the loss scale reach the optimizer divided by it (rescale_grad)."""
    hp = Hyperparameters(optimizer_type=optimizer_type, learning_rate=0.01 if optimizer_type == "adam" else 1.0,
                         gradient_clip_norm=4.0, **ADAM)
    steps, initial = gradients(4), initial_weights()
    plain, _, _ = run_updates(create_optimizer(hp), initial, steps, clip_norm=4.0)
    scaled, _, _ = run_updates(create_optimizer(hp), initial, steps, clip_norm=4.0, loss_scale=2.0 ** 10)
    assert_steps_close(scaled, plain, rtol=1e-5)


def test_default_adam_is_mxnets_adam_as_the_job_created_it_before():
    """Defaults: the same updates, bit for bit, as the optimizer given by name with today's parameters."""
    hp = Hyperparameters(weight_decay=0.01, clip_gradient=1.0)
    params = optimizer_parameters(hp)
    assert (params["beta1"], params["beta2"], params["epsilon"]) == (0.9, 0.999, 1e-8)
    reference = mx.optimizer.Adam()
    assert (reference.beta1, reference.beta2, reference.epsilon) == (0.9, 0.999, 1e-8)
    steps, initial = gradients(5), initial_weights()
    ours, _, _ = run_updates(create_optimizer(hp), initial, steps)
    before, _, _ = run_updates(mx.optimizer.create("adam", learning_rate=hp.learning_rate, wd=0.01,
                                                   clip_gradient=1.0), initial, steps)
    for a, b in zip(ours, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer_type", ["adam", "adadelta"])
def test_optimizer_state_resumes_exactly(optimizer_type, tmp_path):
    """save_states / load_states (the training state's optimizer file) in the middle gives the same weights."""
    hp = Hyperparameters(optimizer_type=optimizer_type, learning_rate=0.01, **ADAM, adadelta_rho=0.9)
    steps, initial = gradients(6), initial_weights()
    whole, _, _ = run_updates(create_optimizer(hp), initial, steps)
    first, trainer, parameter = run_updates(create_optimizer(hp), initial, steps[:2])
    path = str(tmp_path / "optimizer.states")
    trainer.save_states(path)
    resumed_parameter = gluon.Parameter("w", shape=SHAPE)
    resumed_parameter.initialize(mx.init.Constant(0), ctx=mx.cpu())
    resumed_parameter.set_data(parameter.data())
    resumed = gluon.Trainer([resumed_parameter], create_optimizer(hp), update_on_kvstore=False, kvstore="local")
    resumed.load_states(path)
    rest, _, _ = run_updates(None, None, steps[2:], trainer=resumed, parameter=resumed_parameter)
    for a, b in zip(first + rest, whole):
        np.testing.assert_array_equal(a, b)


def test_adadelta_pickles_with_its_constants():
    optimizer = Adadelta(rho=0.8, epsilon=1e-3, learning_rate=0.5)
    restored = pickle.loads(pickle.dumps(optimizer))
    assert (type(restored), restored.rho, restored.epsilon, restored.lr) == (Adadelta, 0.8, 1e-3, 0.5)


@pytest.mark.parametrize("optimizer_type, expected", [
    ("adadelta", {"rho": 0.9, "epsilon": 1e-4}),
    ("adam", {"beta1": 0.8, "beta2": 0.95, "epsilon": 1e-3}),
])
def test_the_training_loop_uses_the_configured_optimizer(tmp_path, optimizer_type, expected):
    parameters_file = save_initial_parameters(tmp_path, input_feeding=True)
    trainer = build_trainer(tmp_path, optimizer_type, [mx.cpu(0)], parameters_file, optimizer_type=optimizer_type,
                            adadelta_rho=0.9, adadelta_epsilon=1e-4, **ADAM)
    optimizer = trainer.trainer.optimizer
    assert {name: getattr(optimizer, name) for name in expected} == expected
    before = {name: p.data().asnumpy() for name, p in trainer.model.collect_params().items()}
    state = trainer.fit()
    assert state.num_updates == 1
    moved = [name for name, p in trainer.model.collect_params().items()
             if not np.array_equal(p.data().asnumpy(), before[name])]
    assert len(moved) >= len(before) - 2           # every parameter with a gradient took a step
