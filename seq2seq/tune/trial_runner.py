"""One trial: the real training job in its own `/opt/ml` tree, watched through its checkpoint metrics.

The job writes `output/data/metrics.json` (atomically) at every checkpoint: the values SageMaker's metric definitions
read from its `#quality_metric:` lines. The runner polls that file; at each new checkpoint it reports the objective
to Optuna (step = updates) and, when the pruner says so, SIGTERMs the job (it saves its state, exports the best
model so far and exits) and marks the trial pruned. At the wall-time cap the job gets SIGTERM too, and the trial's
value is the best checkpoint so far. The trial's value is the best checkpoint's: the highest BLEU, the lowest
perplexity.
"""

import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import optuna

from seq2seq.constants import METRICS_JSON_FILE
from seq2seq.local_job import (container_command, failure_line, job_environment, local_command, make_job_tree,
                               start_job, stop_job)

LOG_FILE = "train.log"
COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"


@dataclass(frozen=True)
class TrialSettings:
    """How every trial of a search runs.

    objective: "validation:bleu" or "validation:perplexity"; trial_minutes: wall-time cap of one job (None: none);
    poll_seconds: how often metrics.json is read; threads: OpenMP threads of a job (None: the runtime's default);
    image / container_cli / container_args: run the job in this image with docker or podman (and these more options
    of `run`) instead of this checkout;
    stop_grace_seconds: how long a SIGTERMed job may take to save and exit before SIGKILL.
    """

    data_dir: Path
    objective: str
    trial_minutes: Optional[float] = None
    poll_seconds: float = 2.0
    threads: Optional[int] = None
    image: Optional[str] = None
    container_cli: str = "docker"
    container_args: Tuple[str, ...] = ()
    stop_grace_seconds: float = 600.0

    @property
    def metric_key(self) -> str:
        """The objective's key in metrics.json ("validation:bleu" -> "validation_bleu")."""
        return self.objective.replace(":", "_")

    @property
    def maximize(self) -> bool:
        return self.objective.endswith("bleu")


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended. value: best checkpoint value (None without a checkpoint); updates: of the last
    checkpoint; pruned_step: the updates at which the pruner stopped it; capped: stopped at --trial-minutes."""

    state: str
    value: Optional[float]
    checkpoints: int
    updates: int
    wall_seconds: float
    pruned_step: Optional[int] = None
    capped: bool = False
    failure: Optional[str] = None


def read_checkpoints(tree: Path) -> List[dict]:
    """The job's checkpoint records so far (empty before the first checkpoint)."""
    path = Path(tree) / "output" / "data" / METRICS_JSON_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def job_command(settings: TrialSettings, tree: Path, container_name: str) -> List[str]:
    """The training job's command line: this checkout's `python -m seq2seq.train_job`, or the image."""
    if settings.image:
        return container_command(settings.container_cli, settings.image, tree, settings.threads, container_name,
                                 settings.container_args)
    return local_command()


def _best(values: List[float], maximize: bool) -> Optional[float]:
    return (max(values) if maximize else min(values)) if values else None


class _Watch:
    """Reports the new checkpoints of a running job to the trial."""

    def __init__(self, trial: optuna.Trial, tree: Path, metric_key: str):
        self.trial, self.tree, self.metric_key = trial, tree, metric_key
        self.records: List[dict] = []

    def report_new_checkpoints(self, ask_pruner: bool = True) -> Optional[int]:
        """Report each new checkpoint; the updates at which the pruner asks to stop (`ask_pruner`), else None."""
        records = read_checkpoints(self.tree)
        fresh = records[len(self.records):]
        self.records = records if fresh else self.records
        for record in fresh:
            value = record.get(self.metric_key)
            if value is None:
                continue
            self.trial.report(float(value), step=int(record["updates"]))
            if ask_pruner and self.trial.should_prune():
                return int(record["updates"])
        return None


def run_trial(trial: optuna.Trial, hyperparameters: dict, tree: Path, settings: TrialSettings) -> TrialOutcome:
    """Run the training job with `hyperparameters` (strings) in the fresh tree `tree`; see the module docstring.

    Ctrl-C or SIGTERM of the search (KeyboardInterrupt / SystemExit) stops the job and propagates."""
    tree = Path(tree)
    if tree.exists():
        shutil.rmtree(tree)
    make_job_tree(tree, settings.data_dir, hyperparameters, copy=bool(settings.image), with_subword_models=True)
    # unique per work folder and trial: two searches may run at once in different folders
    container_name = f"seq2seq-tune-{hashlib.sha1(str(tree.resolve()).encode()).hexdigest()[:8]}-{tree.name}"
    command = job_command(settings, tree, container_name)
    start = time.monotonic()
    process = start_job(command, job_environment(tree, settings.threads), tree / LOG_FILE)
    watch = _Watch(trial, tree, settings.metric_key)
    deadline = start + settings.trial_minutes * 60 if settings.trial_minutes else None
    pruned_step, capped = None, False
    try:
        while process.poll() is None:
            pruned_step = watch.report_new_checkpoints()
            if pruned_step is not None:
                break
            if deadline is not None and time.monotonic() >= deadline:
                capped = True
                break
            time.sleep(settings.poll_seconds)
    finally:
        stop_job(process, settings.stop_grace_seconds)
        if settings.image and process.returncode is not None and process.returncode < 0:
            subprocess.run([settings.container_cli, "rm", "-f", container_name], capture_output=True)
    if pruned_step is None:  # checkpoints written between the last poll and the end: the job finished on its own
        watch.report_new_checkpoints(ask_pruner=False)
    wall = round(time.monotonic() - start, 1)
    records = read_checkpoints(tree)
    values = [float(r[settings.metric_key]) for r in records if r.get(settings.metric_key) is not None]
    updates = int(records[-1]["updates"]) if records else 0
    common = dict(value=_best(values, settings.maximize), checkpoints=len(records), updates=updates,
                  wall_seconds=wall, capped=capped)
    shutil.rmtree(tree / "checkpoints", ignore_errors=True)  # the training state: a trial is never resumed
    if pruned_step is not None:
        return TrialOutcome(PRUNED, pruned_step=pruned_step, **common)
    if process.returncode != 0:
        reason = failure_line(tree) or f"the job exited with code {process.returncode} (see {tree / LOG_FILE})"
        return TrialOutcome(FAILED, failure=reason, **common)
    if not values:
        reason = (f"no checkpoint within --trial-minutes {settings.trial_minutes:g}: allow more minutes or set a "
                  "lower checkpoint_frequency_num_batches" if capped else
                  f"the job ended without a checkpoint with {settings.objective} (see {tree / LOG_FILE})")
        return TrialOutcome(FAILED, failure=reason, **common)
    return TrialOutcome(COMPLETE, **common)
