"""Turns the `devices` hyperparameter into MXNet contexts and a kvstore type. GPU parts kept thin."""

from typing import List

import mxnet as mx

from ..errors import UserError
from ..hyperparameters import parse_devices


def available_gpus() -> int:
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:
        return 0


def contexts_for(devices: str) -> List[mx.Context]:
    """auto: every GPU, else one CPU; cpu:N: N CPU contexts (data parallel on CPU); gpu:I,J: those GPUs."""
    kind, count, gpu_ids = parse_devices(devices)
    if kind == "auto":
        gpus = available_gpus()
        return [mx.gpu(i) for i in range(gpus)] if gpus else [mx.cpu(0)]
    if kind == "cpu":
        return [mx.cpu(i) for i in range(count)]
    gpus = available_gpus()
    missing = [i for i in gpu_ids if i >= gpus]
    if missing:
        raise UserError(f"hyperparameter devices={devices}: GPU {missing[0]} requested but {gpus} GPU(s) visible")
    return [mx.gpu(i) for i in gpu_ids]


def local_kvstore_type(contexts: List[mx.Context]) -> str:
    """"device" for several GPUs (reduction on GPU), "local" otherwise."""
    return "device" if len(contexts) > 1 and contexts[0].device_type == "gpu" else "local"
