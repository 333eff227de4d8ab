"""Runs our training job as a measured benchmark process (wall time, peak RSS, log), failing with its reason."""

import os
import sys
from pathlib import Path
from typing import Optional

from bench import sockeye_peer

REPO_ROOT = Path(__file__).resolve().parent.parent


def training_job_environment(base: Path, threads: int, wait_policy: Optional[str]) -> dict:
    """The environment of a benchmarked training job: SAGEMAKER_BASE_DIR=base, this checkout importable, quiet
    MXNet, `threads` OpenMP threads and `wait_policy` (None: unset, as the job ships; an inherited one is dropped)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(sockeye_peer.omp_env(threads, wait_policy), SAGEMAKER_BASE_DIR=str(base),
               MXNET_SUBGRAPH_VERBOSE="0", PYTHONPATH=str(REPO_ROOT))
    return env


def run_training_job(base: Path, threads: int, wait_policy: str, log_path: Path, what: str = "training job"):
    """`python -m seq2seq.train_job` with SAGEMAKER_BASE_DIR=base and the benchmark's OpenMP settings.

    Returns sockeye_peer's measured run; raises RuntimeError with the job's failure line (or log tail)."""
    env = training_job_environment(base, threads, wait_policy)
    run = sockeye_peer.run_measured([sys.executable, "-m", "seq2seq.train_job"], env, log_path, cwd=REPO_ROOT)
    if run.returncode != 0:
        failure = base / "output" / "failure"
        reason = failure.read_text()[:1000] if failure.exists() else run.log_text()[-2000:]
        raise RuntimeError(f"{what} failed (exit {run.returncode}): {reason}")
    return run
