"""The precision-aware update step: the one place that owns "gradients in true units".

An update is: backward on the loss heads (multiplied by the loss scale when loss scaling is on) →
all-reduce over contexts and workers → one host synchronisation that measures the global gradient
norm (divided by the loss scale: true units) and, with loss scaling, finds overflow → skip the update
on overflow, otherwise apply it with the unscaling and the global-norm clipping folded into the
optimizer's `rescale_grad` (no extra pass over the gradients). Element-wise `clip_gradient` runs
inside the optimizer after `rescale_grad`, so it also sees true units.

fp16 (`precision=fp16`, GPU only) is MXNet AMP (`amp.init()` before the model is built) with the
dynamic loss scale kept here rather than in AMP's `LossScaler`: its state is part of the training
state, so resume is exact, and a skipped update is reported to the caller, which does not count it.
On CPU, tests give an fp32 model a `DynamicLossScale` to exercise the same arithmetic.
"""

import logging
import math
from dataclasses import asdict, dataclass
from typing import List, Optional

import mxnet as mx
from mxnet import autograd

from ..errors import UserError

logger = logging.getLogger(__name__)


def enable_mixed_precision(precision: str, contexts: List[mx.Context]) -> bool:
    """Call before building the model. Returns True when AMP is active."""
    if precision == "fp32":
        return False
    if any(ctx.device_type != "gpu" for ctx in contexts):
        raise UserError(f"hyperparameter precision={precision} needs GPUs (devices are {contexts}); use fp32 on CPU")
    from mxnet.contrib import amp
    amp.init()
    return True


@dataclass
class DynamicLossScale:
    """Dynamic loss scaling, as MXNet AMP's LossScaler: start at 2^16, halve on overflow, double after
    `growth_interval` updates without overflow, never above `max_scale` (nor below `min_scale`).

    `scale` multiplies the loss (a unitless factor); `good_steps` counts updates since the last change.
    """

    scale: float = 2.0 ** 16
    good_steps: int = 0
    growth_interval: int = 2000
    max_scale: float = 2.0 ** 24
    min_scale: float = 1.0

    def update(self, overflow: bool) -> None:
        """Record one step's outcome and adjust the scale."""
        if overflow:
            self.scale = max(self.min_scale, self.scale / 2.0)
            self.good_steps = 0
            return
        self.good_steps += 1
        if self.good_steps >= self.growth_interval:
            self.scale = min(self.max_scale, self.scale * 2.0)
            self.good_steps = 0

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict) -> "DynamicLossScale":
        """The inverse of state_dict; ValueError/TypeError for a record that is not one."""
        scale = cls(**state)
        if not (math.isfinite(scale.scale) and scale.scale > 0) or scale.good_steps < 0:
            raise ValueError(f"scale {scale.scale!r} and good_steps {scale.good_steps!r} are out of range")
        return scale


@dataclass
class StepResult:
    """What one `GradientStep.step` did: `applied` False when skipped for overflow; `grad_norm` the global norm
    of the mean gradient in true units (None when it was not measured: fp32 without clipping); `clip_factor`
    the factor (<= 1) the gradients were multiplied by."""

    applied: bool
    grad_norm: Optional[float] = None
    clip_factor: float = 1.0


class GradientStep:
    """backward → (loss scaling: unscale) → clip by global norm → update, for a gluon.Trainer.

    Args:
        trainer: a gluon.Trainer with `update_on_kvstore=False` (all-reduce here, update on the workers).
        parameters: the trainer's parameters (a ParameterDict or list).
        clip_norm: the `gradient_clip_norm` limit on the norm of the mean gradient; <= 0 for none.
        num_workers: hosts whose gradients the kvstore sums; each update divides by it.
        loss_scale: a DynamicLossScale for fp16 (or a test's stub on fp32), None for plain fp32.

    Each context's loss head is `sum(token loss) / target tokens of the whole batch`, so that summing the
    contexts (all-reduce) gives the gradient of the batch mean; the kvstore sums the workers, and the update
    divides by `num_workers`.
    """

    def __init__(self, trainer, parameters, clip_norm: float, num_workers: int = 1,
                 loss_scale: Optional[DynamicLossScale] = None):
        self.trainer = trainer
        values = parameters.values() if hasattr(parameters, "values") else parameters
        self._parameters = [p for p in values if p.grad_req != "null"]
        self.clip_norm = clip_norm
        self.num_workers = num_workers
        self.loss_scale = loss_scale

    @property
    def loss_scaling(self) -> bool:
        """True when the loss heads are multiplied by a loss scale (they must then be differentiable)."""
        return self.loss_scale is not None

    def backward(self, heads: List[mx.nd.NDArray]) -> None:
        """Back-propagate the loss heads, multiplied by the loss scale when there is one (as their head gradient,
        so that the multiplication needs no recording)."""
        if self.loss_scale is None:
            autograd.backward(heads)
            return
        scale = self.loss_scale.scale
        autograd.backward(heads, head_grads=[mx.nd.full(h.shape, scale, ctx=h.context, dtype=h.dtype)
                                             for h in heads])

    def step(self) -> StepResult:
        """Apply the gradients of the last `backward` unless they overflowed; see the module docstring."""
        if self.loss_scale is None and self.clip_norm <= 0:
            self.trainer.step(self.num_workers)  # nothing reads the gradients: no host synchronisation
            return StepResult(applied=True)
        self.trainer.allreduce_grads()
        scale = 1.0 if self.loss_scale is None else self.loss_scale.scale
        norm = self.global_norm(scale)
        if self.loss_scale is not None:
            overflow = not math.isfinite(norm)
            self.loss_scale.update(overflow)
            if overflow:
                logger.info("gradient overflow: update skipped, loss scale now %g", self.loss_scale.scale)
                return StepResult(applied=False, grad_norm=norm)
        factor = 1.0
        if 0 < self.clip_norm < norm:
            factor = self.clip_norm / norm
        # The optimizer multiplies the gradients by rescale_grad = trainer scale / divisor: one place to
        # unscale (1 / loss scale), clip (factor) and average the workers.
        self.trainer.update(self.num_workers * scale / factor)
        return StepResult(applied=True, grad_norm=norm, clip_factor=factor)

    def global_norm(self, scale: float = 1.0) -> float:
        """The L2 norm of the all-reduced gradients divided by `scale` and by the number of workers, i.e. of
        the mean gradient in true units. One host synchronisation; inf or nan when a gradient is not finite
        (or its square overflows float32)."""
        context = self._parameters[0].list_ctx()[0]
        by_dtype = {}
        for parameter in self._parameters:
            grad = parameter.grad(context)
            by_dtype.setdefault(grad.dtype, []).append(grad)
        sums = [mx.nd.multi_sum_sq(*arrays, num_arrays=len(arrays)).astype("float32")   # one kernel per type
                for arrays in by_dtype.values()]
        squared = float(mx.nd.sum(mx.nd.concat(*sums, dim=0) if len(sums) > 1 else sums[0]).asscalar())
        if not math.isfinite(squared):
            return squared
        return math.sqrt(squared) / (scale * self.num_workers)
