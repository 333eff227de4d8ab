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
    for index in gpu_ids:
        check_gpu_visible(index, f"hyperparameter devices={devices}: GPU {index}", "devices=cpu (or auto)")
    return [mx.gpu(i) for i in gpu_ids]


def check_gpu_visible(index: int, what: str, instead: str = "cpu") -> None:
    """UserError naming `what` unless GPU `index` exists here (a CPU-only MXNet build sees none)."""
    visible = available_gpus()
    if index < visible:
        return
    if visible:
        raise UserError(f"{what} requested, but only {visible} GPU(s) are visible (gpu:0 to gpu:{visible - 1}); "
                        f"use one of them or {instead}")
    raise UserError(f"{what} requested, but no GPU is visible here (no GPU on this machine or instance, or an "
                    f"MXNet build without CUDA); use {instead} or a GPU instance")


def local_kvstore_type(contexts: List[mx.Context]) -> str:
    """"device" for several GPUs (reduction on GPU), "local" otherwise."""
    return "device" if len(contexts) > 1 and contexts[0].device_type == "gpu" else "local"
