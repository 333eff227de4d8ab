"""A training job on this machine: its `/opt/ml` tree built from prepared data, started, stopped, and its outcome.

Prepared data is what `python -m recordio_tools prepare --output DIR` writes: DIR holds train.rec, val.rec,
vocab.src.json, vocab.trg.json and, for raw text, subword.src.model and subword.trg.model. A DIR that already holds
the channels as folders (train/, validation/, vocab/) is taken as it is. The job runs as
`python -m seq2seq.train_job` with `SAGEMAKER_BASE_DIR` pointing at the tree, or in the image with
`docker run --rm -v TREE:/opt/ml IMAGE train` (SageMaker's own call); either way SIGTERM asks it to save its state,
export the best model and exit.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .constants import (FAILURE_FILE, SUBWORD_FILES, TRAIN_CHANNEL, TRAIN_FILE, VALIDATION_CHANNEL, VALIDATION_FILE,
                        VOCAB_CHANNEL, VOCAB_SOURCE_FILE, VOCAB_TARGET_FILE)
from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
CHANNEL_FILES = {TRAIN_CHANNEL: (TRAIN_FILE,), VALIDATION_CHANNEL: (VALIDATION_FILE,),
                 VOCAB_CHANNEL: (VOCAB_SOURCE_FILE, VOCAB_TARGET_FILE)}
STOP_GRACE_SECONDS = 600
CONTAINER_CLIS = ("docker", "podman")


def _place(source: Path, target: Path, copy: bool) -> None:
    """Link `target` to `source` (absolute symlink), or for a container give it the file itself: a hard link,
    or a copy across file systems (a symlink to a host path does not resolve inside the container)."""
    if not copy:
        os.symlink(source, target)
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _channel_sources(data_dir: Path) -> Dict[str, List[Path]]:
    """channel -> the files it gets, from a prepare output folder or a folder of channel folders."""
    if all((data_dir / channel).is_dir() for channel in CHANNEL_FILES):
        return {channel: sorted(p for p in (data_dir / channel).iterdir() if p.is_file())
                for channel in CHANNEL_FILES}
    sources = {}
    for channel, names in CHANNEL_FILES.items():
        missing = [name for name in names if not (data_dir / name).is_file()]
        if missing:
            raise UserError(f"{data_dir}: prepared data file {missing[0]} is missing (expected the output of "
                            "python -m recordio_tools prepare --output DIR, or the folders train/, validation/ "
                            "and vocab/)")
        sources[channel] = [data_dir / name for name in names]
    sources[VOCAB_CHANNEL] += [data_dir / name for name in SUBWORD_FILES if (data_dir / name).is_file()]
    return sources


def check_prepared_data(data_dir: Path) -> None:
    """UserError naming the folder and the missing file unless `data_dir` holds prepared data."""
    if not Path(data_dir).is_dir():
        raise UserError(f"{data_dir}: no such data folder (expected the output of python -m recordio_tools prepare "
                        "--output DIR)")
    _channel_sources(Path(data_dir).resolve())


def make_job_tree(base: Path, rec_dir: Path, hyperparameters: dict, copy: bool = False,
                  with_subword_models: bool = False) -> Path:
    """A SageMaker `/opt/ml` tree under `base` with the channels of `rec_dir` (linked, or copied for a container).

    `hyperparameters` are written as given (SageMaker's form: every value a string). Returns `base`.
    `with_subword_models` also puts a prepare folder's subword models into the vocab channel.
    """
    base, rec_dir = Path(base), Path(rec_dir).resolve()
    sources = _channel_sources(rec_dir)
    if not with_subword_models and not all((rec_dir / channel).is_dir() for channel in CHANNEL_FILES):
        sources[VOCAB_CHANNEL] = [p for p in sources[VOCAB_CHANNEL] if p.name not in SUBWORD_FILES]
    for channel, files in sources.items():
        directory = base / "input" / "data" / channel
        directory.mkdir(parents=True, exist_ok=True)
        for source in files:
            _place(source.resolve(), directory / source.name, copy)
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    channel_config = {c: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                          "RecordWrapperType": "None"} for c in CHANNEL_FILES}
    (config / "inputdataconfig.json").write_text(json.dumps(channel_config, indent=2))
    for sub in ("model", "output/data", "checkpoints"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    return base


def container_command(cli: str, image: str, tree: Path, threads: Optional[int] = None,
                      name: Optional[str] = None, extra: Sequence[str] = ()) -> List[str]:
    """`docker run --rm -v TREE:/opt/ml IMAGE train`, as SageMaker runs a training job (podman takes the same).

    `threads` sets OMP_NUM_THREADS in the container; `name` names the container; `extra` are more options of
    `run` (e.g. `--gpus all`, or podman's `--runtime runc`)."""
    if cli not in CONTAINER_CLIS:
        raise UserError(f"container CLI {cli!r} is not supported; allowed: {', '.join(CONTAINER_CLIS)}")
    command = [cli, "run", "--rm", "-v", f"{Path(tree).resolve()}:/opt/ml"]
    if name:
        command += ["--name", name]
    if threads:
        command += ["-e", f"OMP_NUM_THREADS={threads}"]
    return command + list(extra) + [image, "train"]


def local_command() -> List[str]:
    """The training job as a Python process of this checkout."""
    return [sys.executable, "-m", "seq2seq.train_job"]


def job_environment(base: Path, threads: Optional[int] = None) -> dict:
    """The environment of a local job: `/opt/ml` relocated to `base`, this checkout importable, quiet MXNet;
    `threads` OpenMP threads. OMP_WAIT_POLICY stays as the caller's environment has it (unset: the job runs as it
    ships; PASSIVE costs training about 15% on a machine that is not oversubscribed)."""
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), PYTHONPATH=str(REPO_ROOT), MXNET_SUBGRAPH_VERBOSE="0",
               PYTHONUNBUFFERED="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def start_job(command: List[str], env: dict, log_path: Path) -> subprocess.Popen:
    """Start the job in its own session, stdout and stderr appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_job(process: subprocess.Popen, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the training job (it saves its state and exports the best model), SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def failure_line(base: Path) -> Optional[str]:
    """The first line of the job's output/failure file, or None when it wrote none."""
    path = Path(base) / "output" / FAILURE_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return text.splitlines()[0] if text else None
