"""The complete, resumable training state, saved atomically as one directory under /opt/ml/checkpoints."""

import errno
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional

import mxnet as mx

from ..atomic_write import write_text as write_text_atomically  # the name tests/bad_inputs/ patches
from ..atomic_write import write_with
from ..constants import (MODEL_PARAMS_FILE, STATE_FILE, STATE_OPTIMIZER_FILE, STATE_PARAMS_FILE,
                         TRAINING_STATE_DIR)
from ..errors import CheckpointError, StorageError


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
    skipped_updates: int = 0                   # fp16: updates skipped because the gradients overflowed
    loss_scale: Optional[dict] = None          # fp16: precision.DynamicLossScale.state_dict()
    curriculum_phase: str = "all"              # length curriculum: "short" (short buckets only) or "all"


# Fields added after the first release: a checkpoint written before them resumes with their defaults.
OPTIONAL_FIELDS = frozenset({"skipped_updates", "loss_scale", "curriculum_phase"})
MANIFEST_KEY = "files"  # in state.json: {file name: {"bytes": n, "sha256": hex}} of the files beside it
RECOVERY_HINT = ("delete {dir} to train from scratch, or put back a complete copy of it "
                 "(with SageMaker: of the checkpoint prefix in S3)")


def state_dir(checkpoint_dir: str) -> str:
    return os.path.join(checkpoint_dir, TRAINING_STATE_DIR)


def storage_error(action: str, path: str, error: BaseException, intact: str) -> StorageError:
    """A StorageError naming the file, the operating system's (or MXNet's) reason and what is left intact."""
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror + (f" ({errno.errorcode[error.errno]})" if error.errno in errno.errorcode else "")
    else:
        reason = short_reason(error)
        if "Write incomplete" in reason:
            reason += " (the disk is probably full)"
    return StorageError(f"cannot {action} {path}: {reason}; {intact}")


def short_reason(error: BaseException) -> str:
    """One line saying what failed: for an MXNetError (a C++ traceback) its last line, e.g.
    "Check failed: fi->Read(data): Invalid NDArray file format"."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__).replace("MXNetError: ", "")[:300]


def save_file_atomically(path: str, write, intact: str, fsync: bool = False) -> None:
    """`write(temp_path)` into a temporary file next to `path`, then rename it over `path` (atomic_write.write_with;
    `fsync`: flush the data to the disk before the rename).

    Any failure (full disk, no permission, an MXNet write error) removes the temporary file, leaves `path`
    as it was and raises StorageError naming `path` and saying what is `intact`; other exceptions propagate
    unchanged (the temporary file is removed as well).
    """
    try:
        write_with(path, write, fsync=fsync)
    except (OSError, mx.base.MXNetError) as error:
        raise storage_error("write", path, error, intact) from error


def save_training_state(checkpoint_dir: str, state: TrainingState, save_params, save_optimizer) -> None:
    """Write parameters, optimizer state and counters into a fresh directory, then swap it in by renames.

    `save_params(path)` and `save_optimizer(path)` write the MXNet files; state.json, written last, records the
    size and SHA-256 of both. A crash at any point leaves either the old or the new complete state in place; a
    failing write (full disk, no permission) removes the fresh directory, keeps the previous state and raises
    StorageError naming the file.
    """
    final = state_dir(checkpoint_dir)
    fresh = final + ".new"
    old = final + ".old"
    intact = (f"the previous checkpoint in {final} is intact" if os.path.isdir(final)
              else "no checkpoint was written")
    current = fresh
    try:
        os.makedirs(checkpoint_dir, exist_ok=True)
        shutil.rmtree(fresh, ignore_errors=True)
        os.makedirs(fresh)
        current = os.path.join(fresh, STATE_PARAMS_FILE)
        save_params(current)
        current = os.path.join(fresh, STATE_OPTIMIZER_FILE)
        save_optimizer(current)
        record = asdict(state)
        record[MANIFEST_KEY] = {name: _describe(os.path.join(fresh, name))
                                for name in (STATE_PARAMS_FILE, STATE_OPTIMIZER_FILE)}
        current = os.path.join(fresh, STATE_FILE)
        write_text_atomically(current, json.dumps(record, indent=1))
        _sync_directory(fresh)
    except (OSError, mx.base.MXNetError) as error:
        shutil.rmtree(fresh, ignore_errors=True)
        raise storage_error("write the checkpoint file", current, error, intact) from error
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(final):
        os.rename(final, old)
    os.rename(fresh, final)
    shutil.rmtree(old, ignore_errors=True)


def load_training_state(checkpoint_dir: str) -> Optional[TrainingState]:
    """The saved state, or None when there is none (a crash between the two renames leaves `.old`: use it).

    A damaged state directory raises CheckpointError naming the file and what is wrong with it: a missing
    state.json, parameter or optimizer file, a state.json that is not JSON or not a training state, a file
    shorter or longer than state.json records (truncated), or one whose checksum differs.
    """
    final = state_dir(checkpoint_dir)
    if not os.path.isdir(final) and os.path.isdir(final + ".old"):
        os.rename(final + ".old", final)
    if not os.path.isdir(final):
        if os.path.exists(final):
            raise damaged(final, "is not a directory")
        return None
    path = os.path.join(final, STATE_FILE)
    if not os.path.exists(path):
        present = sorted(os.listdir(final))
        raise damaged(path, "is missing" + (f" (the directory holds {', '.join(present)})" if present
                                            else " (the directory is empty)"))
    try:
        with open(path, "rb") as stream:
            record = json.loads(stream.read().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise damaged(path, f"is not UTF-8 text (byte offset {error.start})") from None
    except json.JSONDecodeError as error:
        raise damaged(path, f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno}, "
                            f"character {error.pos})") from None
    if not isinstance(record, dict):
        raise damaged(path, f"is not a training state (a JSON {type(record).__name__}, not an object)")
    manifest = record.pop(MANIFEST_KEY, None)
    names = {f.name for f in fields(TrainingState)}
    missing = sorted(names - set(record) - OPTIONAL_FIELDS)
    unknown = sorted(set(record) - names)
    if missing or unknown:
        what = "; ".join(part for part in (f"missing field(s) {', '.join(missing)}" if missing else "",
                                           f"unknown field(s) {', '.join(unknown)}" if unknown else "") if part)
        raise damaged(path, f"is not a training state ({what})")
    for name in (STATE_PARAMS_FILE, STATE_OPTIMIZER_FILE):
        _check_file(os.path.join(final, name), (manifest or {}).get(name), path)
    return TrainingState(**record)


def damaged(path: str, problem: str) -> CheckpointError:
    """CheckpointError: "checkpoint file <path> <problem>; delete ... or put back a complete copy"."""
    directory = path if os.path.basename(path) == TRAINING_STATE_DIR else os.path.dirname(path)
    return CheckpointError(f"damaged checkpoint: {path} {problem}; {RECOVERY_HINT.format(dir=directory)}")


def _check_file(path: str, expected: Optional[dict], state_path: str) -> None:
    if not os.path.isfile(path):
        raise damaged(path, "is missing")
    if not expected:
        return  # a checkpoint written before state.json recorded sizes: loading the file checks it
    size = os.path.getsize(path)
    if size != expected.get("bytes"):
        kind = "truncated" if size < expected.get("bytes", 0) else "longer than recorded"
        raise damaged(path, f"is {kind}: {size} bytes, {os.path.basename(state_path)} records {expected['bytes']}")
    if _sha256(path) != expected.get("sha256"):
        raise damaged(path, f"is corrupt: its SHA-256 differs from the one {os.path.basename(state_path)} records")


def _describe(path: str) -> dict:
    return {"bytes": os.path.getsize(path), "sha256": _sha256(path)}


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sync_directory(path: str) -> None:
    """fsync the files of `path` so that the renames never publish data still only in the page cache."""
    for name in os.listdir(path):
        with open(os.path.join(path, name), "rb") as stream:
            os.fsync(stream.fileno())


def params_path(checkpoint_dir: str) -> str:
    return os.path.join(state_dir(checkpoint_dir), STATE_PARAMS_FILE)


def optimizer_path(checkpoint_dir: str) -> str:
    return os.path.join(state_dir(checkpoint_dir), STATE_OPTIMIZER_FILE)


def best_params_path(checkpoint_dir: str) -> str:
    return os.path.join(checkpoint_dir, MODEL_PARAMS_FILE)
