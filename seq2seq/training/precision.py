"""Mixed precision (fp16 with dynamic loss scaling) through MXNet AMP. GPU only; fp32 needs nothing here."""

from typing import List

import mxnet as mx
from mxnet import autograd

from ..errors import UserError


def enable_mixed_precision(precision: str, contexts: List[mx.Context]) -> bool:
    """Call before building the model. Returns True when AMP is active."""
    if precision == "fp32":
        return False
    if any(ctx.device_type != "gpu" for ctx in contexts):
        raise UserError(f"hyperparameter precision={precision} needs GPUs (devices are {contexts}); use fp32 on CPU")
    from mxnet.contrib import amp
    amp.init()
    return True


def prepare_trainer(trainer, enabled: bool) -> None:
    if enabled:
        from mxnet.contrib import amp
        amp.init_trainer(trainer)


def backward(losses: List[mx.nd.NDArray], trainer, enabled: bool) -> None:
    """Back-propagate the summed losses, scaled by AMP's dynamic loss scale when enabled."""
    if not enabled:
        autograd.backward(losses)
        return
    from mxnet.contrib import amp
    with amp.scale_loss(losses, trainer) as scaled:
        autograd.backward(scaled)
