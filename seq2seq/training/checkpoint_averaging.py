"""Checkpoint averaging (`average_checkpoints=N`): the exported model is the element-wise mean of the parameters
of the last N checkpoints, as Sockeye's `average` tool computes it (its `--strategy lastN`).

The training state (training_state.py) holds one set of parameters, so the master also keeps the parameters of
every checkpoint in `<checkpoint dir>/averaging/params.<checkpoint number, 5 digits>` (Gluon `save_parameters`
files, each written atomically). The file of checkpoint k is written before the training state of checkpoint k;
the files of checkpoints before k - N are then removed: the state still on disk may be checkpoint k - 1's, whose
resume needs k - N .. k - 1. The disk holds at most N + 1 files. Files of checkpoints after k (left by a run that
crashed between a file and its state) are removed too, and the average reads only the checkpoints up to the
state's own count: a resumed job (SIGTERM, spot interruption) averages the same files as an uninterrupted one. A temporary file left
by a process killed while writing one is removed at the next checkpoint.
"""

import contextlib
import logging
import os
import re
import tempfile
from typing import Callable, Dict, List

import mxnet as mx
import numpy as np

from . import training_state as ts

logger = logging.getLogger(__name__)

AVERAGING_DIR = "averaging"
FILE_PREFIX = "params."
_FILE_NAME = re.compile(r"^params\.(\d+)$")


def kept_dir(checkpoint_dir: str) -> str:
    return os.path.join(checkpoint_dir, AVERAGING_DIR)


def kept_path(checkpoint_dir: str, checkpoint: int) -> str:
    """The kept parameter file of checkpoint number `checkpoint` (1-based, as TrainingState.num_checkpoints)."""
    return os.path.join(kept_dir(checkpoint_dir), f"{FILE_PREFIX}{checkpoint:05d}")


def kept_checkpoints(checkpoint_dir: str) -> List[int]:
    """The checkpoint numbers whose parameter files are kept, ascending."""
    try:
        names = os.listdir(kept_dir(checkpoint_dir))
    except FileNotFoundError:
        return []
    return sorted(int(match.group(1)) for match in map(_FILE_NAME.match, names) if match)


def keep_checkpoint_parameters(checkpoint_dir: str, checkpoint: int, num_averaged: int,
                               save_params: Callable[[str], None]) -> None:
    """Keep the parameters of checkpoint `checkpoint` (`save_params(path)` writes them), then remove the files no
    resume or average can need: checkpoints before `checkpoint - num_averaged`, and after `checkpoint`.

    Call it before the checkpoint's training state is saved. StorageError (naming the file) when the write fails;
    the files already kept stay as they were."""
    directory = kept_dir(checkpoint_dir)
    path = kept_path(checkpoint_dir, checkpoint)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise ts.storage_error("create the directory of the averaged checkpoints", directory, error,
                               "nothing was written") from error
    for name in os.listdir(directory):            # a temporary file left by a process killed while writing
        if name.startswith("." + FILE_PREFIX) and name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(directory, name))
    # flushed before the rename: the training state saved next may count on it after a power loss
    ts.save_file_atomically(path, save_params, "the parameters of the earlier checkpoints are intact", fsync=True)
    for number in kept_checkpoints(checkpoint_dir):
        if number < checkpoint - num_averaged or number > checkpoint:
            with contextlib.suppress(FileNotFoundError):
                os.remove(kept_path(checkpoint_dir, number))


def checkpoints_to_average(checkpoint_dir: str, last_checkpoint: int, num_averaged: int) -> List[int]:
    """The kept checkpoints among the last `num_averaged` up to `last_checkpoint` (fewer when fewer exist)."""
    wanted = range(max(1, last_checkpoint - num_averaged + 1), last_checkpoint + 1)
    kept = set(kept_checkpoints(checkpoint_dir))
    missing = [number for number in wanted if number not in kept]
    if missing and kept & set(wanted):
        logger.warning("checkpoint averaging: the parameters of checkpoint(s) %s are not in %s; averaging the others",
                       ", ".join(map(str, missing)), kept_dir(checkpoint_dir))
    return [number for number in wanted if number in kept]


def average_parameter_files(paths: List[str]) -> Dict[str, mx.nd.NDArray]:
    """The element-wise mean (computed in float64, returned in each parameter's dtype) of Gluon parameter files
    with the same names and shapes. A damaged or mismatching file raises CheckpointError naming it."""
    sums, dtypes = {}, {}
    for path in paths:
        try:
            loaded = mx.nd.load(path)
        except mx.base.MXNetError as error:
            raise ts.damaged(path, f"cannot be loaded ({ts.short_reason(error)})") from error
        if sums and set(loaded) != set(sums):
            raise ts.damaged(path, f"holds other parameters than {paths[0]}")
        for name, value in loaded.items():
            array = value.asnumpy().astype(np.float64)
            if name in sums and sums[name].shape != array.shape:
                raise ts.damaged(path, f"holds {name} of shape {array.shape}, {paths[0]} of {sums[name].shape}")
            sums[name] = sums[name] + array if name in sums else array
            dtypes[name] = value.dtype
    return {name: mx.nd.array(total / len(paths), dtype=dtypes[name]) for name, total in sums.items()}


def load_average(model, checkpoint_dir: str, last_checkpoint: int, num_averaged: int) -> List[int]:
    """Load into `model` (on its contexts) the mean of the kept parameters of the last `num_averaged` checkpoints
    up to `last_checkpoint`; returns the checkpoint numbers averaged (empty: none kept, the model is unchanged)."""
    numbers = checkpoints_to_average(checkpoint_dir, last_checkpoint, num_averaged)
    if not numbers:
        return []
    averaged = average_parameter_files([kept_path(checkpoint_dir, number) for number in numbers])
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "averaged.params")
        mx.nd.save(path, averaged)
        model.load_parameters(path, ctx=model.collect_params().list_ctx())
    return numbers
