"""The complete, resumable training state, saved atomically as one directory under /opt/ml/checkpoints."""

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from ..constants import TRAINING_STATE_DIR
from ..data.atomic_file import write_text_atomically

PARAMS_FILE = "params"
OPTIMIZER_FILE = "optimizer.states"
STATE_FILE = "state.json"
BEST_PARAMS_FILE = "params.best"


@dataclass
class TrainingState:
    """Counters and history. `epoch`/`batch_index` is the iterator position of the next update."""

    num_updates: int = 0
    epoch: int = 0
    batch_index: int = 0
    num_checkpoints: int = 0
    best_metric: Optional[float] = None
    best_checkpoint: int = 0
    checkpoints_without_improvement: int = 0
    lr_schedule: dict = field(default_factory=dict)
    history: List[dict] = field(default_factory=list)
    train_loss_sum: float = 0.0
    train_tokens: int = 0
    hyperparameters: dict = field(default_factory=dict)


def state_dir(checkpoint_dir: str) -> str:
    return os.path.join(checkpoint_dir, TRAINING_STATE_DIR)


def save_training_state(checkpoint_dir: str, state: TrainingState, save_params, save_optimizer) -> None:
    """Write parameters, optimizer state and counters into a fresh directory, then swap it in by renames.

    `save_params(path)` and `save_optimizer(path)` write the MXNet files. A crash at any point leaves either the
    old or the new complete state in place.
    """
    os.makedirs(checkpoint_dir, exist_ok=True)
    final = state_dir(checkpoint_dir)
    fresh = final + ".new"
    old = final + ".old"
    shutil.rmtree(fresh, ignore_errors=True)
    os.makedirs(fresh)
    save_params(os.path.join(fresh, PARAMS_FILE))
    save_optimizer(os.path.join(fresh, OPTIMIZER_FILE))
    write_text_atomically(os.path.join(fresh, STATE_FILE), json.dumps(asdict(state), indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(final):
        os.rename(final, old)
    os.rename(fresh, final)
    shutil.rmtree(old, ignore_errors=True)


def load_training_state(checkpoint_dir: str) -> Optional[TrainingState]:
    """The saved state, or None when there is none (a crash between the two renames leaves `.old`: use it)."""
    final = state_dir(checkpoint_dir)
    if not os.path.isdir(final) and os.path.isdir(final + ".old"):
        os.rename(final + ".old", final)
    path = os.path.join(final, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return TrainingState(**json.load(stream))


def params_path(checkpoint_dir: str) -> str:
    return os.path.join(state_dir(checkpoint_dir), PARAMS_FILE)


def optimizer_path(checkpoint_dir: str) -> str:
    return os.path.join(state_dir(checkpoint_dir), OPTIMIZER_FILE)


def best_params_path(checkpoint_dir: str) -> str:
    return os.path.join(checkpoint_dir, BEST_PARAMS_FILE)
