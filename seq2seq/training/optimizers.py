"""The optimizer of a training job, from the hyperparameters: MXNet's Adam, SGD and RMSProp, and Adadelta.

Adam is MXNet's (`adam_update`): with g the gradient after `rescale_grad`, L2 and clipping (see below),

    m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g²
    w -= learning_rate * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)

which is Kingma & Ba's algorithm in the form of their section 2 ("the efficiency ... can be improved"): the bias
corrections are folded into the step size, and `adam_epsilon` is their ε̂, added to sqrt(v) rather than to
sqrt(v / (1 - beta2^t)) (TensorFlow's convention; PyTorch adds ε to the corrected root). The defaults (0.9, 0.999,
1e-8) are MXNet's, so a job that does not set them trains as before they existed.

Adadelta is Zeiler 2012's algorithm 1 with the step multiplied by the learning rate (PyTorch's convention), so that
`learning_rate=1.0` is the published rule and the learning-rate schedules (warm-up, plateau reduction, decay) act
on it. MXNet's own AdaDelta ignores the learning rate and applies weight decay outside the step; it is not used.

Every optimizer sees the same gradient: `g = clip(rescale_grad * grad + weight_decay * w, clip_gradient)`, where
`rescale_grad` carries the averaging over workers, the fp16 loss-scale division and the global-norm clipping
factor (see precision.GradientStep), and `clip_gradient` (when > 0) clips element-wise.
"""

import mxnet as mx
from mxnet import ndarray as nd

from ..hyperparameters import Hyperparameters


class Adadelta(mx.optimizer.Optimizer):
    """Zeiler 2012 (ADADELTA, algorithm 1), the update multiplied by the learning rate.

    Per weight w, with accumulators E[g²] and E[Δ²] starting at zero (arrays of w's shape and dtype)::

        g = clip(grad * rescale_grad + wd * w, clip_gradient)
        E[g²] = rho * E[g²] + (1 - rho) * g²
        Δ = sqrt(E[Δ²] + epsilon) / sqrt(E[g²] + epsilon) * g
        E[Δ²] = rho * E[Δ²] + (1 - rho) * Δ²
        w -= learning_rate * Δ

    Args:
        rho: decay of both running averages, in (0, 1).
        epsilon: the constant added inside both square roots (> 0).
        **kwargs: mx.optimizer.Optimizer's (learning_rate, wd, clip_gradient, rescale_grad, ...).
    """

    def __init__(self, rho: float = 0.95, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def create_state(self, index, weight):
        return (nd.zeros(weight.shape, weight.context, dtype=weight.dtype),   # E[g²]
                nd.zeros(weight.shape, weight.context, dtype=weight.dtype))   # E[Δ²]

    def update(self, index, weight, grad, state):
        self._update_count(index)
        lr = self._get_lr(index)
        wd = self._get_wd(index)
        mean_square_grad, mean_square_delta = state
        gradient = grad * self.rescale_grad           # a new array: the gradient buffer stays as it was
        if wd:
            gradient += wd * weight
        if self.clip_gradient is not None:
            gradient = nd.clip(gradient, -self.clip_gradient, self.clip_gradient)
        mean_square_grad[:] = self.rho * mean_square_grad + (1.0 - self.rho) * nd.square(gradient)
        delta = nd.sqrt(mean_square_delta + self.epsilon) / nd.sqrt(mean_square_grad + self.epsilon) * gradient
        mean_square_delta[:] = self.rho * mean_square_delta + (1.0 - self.rho) * nd.square(delta)
        weight[:] -= lr * delta


def optimizer_parameters(hp: Hyperparameters) -> dict:
    """The keyword arguments of the optimizer `hp.optimizer_type` (learning rate, weight decay, clipping and the
    optimizer's own constants)."""
    params = {"learning_rate": hp.learning_rate, "wd": hp.weight_decay}
    if hp.clip_gradient > 0:
        params["clip_gradient"] = hp.clip_gradient
    if hp.optimizer_type == "sgd" and hp.momentum is not None:
        params["momentum"] = hp.momentum
    if hp.optimizer_type == "adam":
        params.update(beta1=hp.adam_beta1, beta2=hp.adam_beta2, epsilon=hp.adam_epsilon)
    if hp.optimizer_type == "adadelta":
        params.update(rho=hp.adadelta_rho, epsilon=hp.adadelta_epsilon)
    return params


def create_optimizer(hp: Hyperparameters) -> mx.optimizer.Optimizer:
    """A fresh optimizer for `hp` (give it to gluon.Trainer, which sets its parameter dictionary)."""
    params = optimizer_parameters(hp)
    if hp.optimizer_type == "adadelta":
        return Adadelta(**params)
    return mx.optimizer.create(hp.optimizer_type, **params)
