"""Shared test setup: import paths, a seeded random state per test, and the seed in the report header.

The seed comes from SEQ2SEQ_TEST_SEED (default 1234) so that a failure can be replayed exactly.
This file is imported before any test module, so the environment set here is in place before MXNet loads.
"""

import os
import random
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
for _path in (REPO_ROOT, TESTS_DIR):
    if _path not in sys.path:
        sys.path.insert(0, _path)
# Tiny test models gain nothing from OpenMP threads, and on a busy machine spinning OpenMP workers make them
# several times slower: one thread unless SEQ2SEQ_TEST_OMP_THREADS says otherwise (set before MXNet loads;
# subprocesses inherit it).
os.environ["OMP_NUM_THREADS"] = os.environ.get("SEQ2SEQ_TEST_OMP_THREADS", "1")
os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")

TEST_SEED = int(os.environ.get("SEQ2SEQ_TEST_SEED", "1234"))


def pytest_report_header(config):
    return f"seq2seq test seed: {TEST_SEED} (set SEQ2SEQ_TEST_SEED to change)"


@pytest.fixture(autouse=True)
def seeded_rng():
    """Seed Python's, numpy's and (when imported) MXNet's generators before every test; yields the seed."""
    random.seed(TEST_SEED)
    import numpy as np
    np.random.seed(TEST_SEED)
    if "mxnet" in sys.modules:
        sys.modules["mxnet"].random.seed(TEST_SEED)
    print(f"seed={TEST_SEED}")
    yield TEST_SEED


@pytest.fixture
def repo_root() -> str:
    return REPO_ROOT


def pytest_configure(config):
    # Each model program uses part of the shared parameters; Gluon warns about the rest on every build.
    config.addinivalue_line("filterwarnings", "ignore:.*is not used by any computation.*:UserWarning")


@pytest.fixture
def in_process(monkeypatch):
    """Run the training job's entry point (train_job.main) in this process on a SageMaker tree: `run(base,
    stop_at=None)`; `stop_at` stops it after that update as SIGTERM does (StopTraining from the update hook).
    The SIGTERM handler the job installs is put back afterwards."""
    import signal

    from seq2seq import train_job
    from seq2seq.training.trainer import StopTraining, TrainingHooks

    previous = signal.getsignal(signal.SIGTERM)

    def run(base, stop_at=None):
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))

        def stop_after(state):
            if state.num_updates == stop_at:
                raise StopTraining
        return train_job.main(hooks=TrainingHooks(on_update=stop_after))
    yield run
    signal.signal(signal.SIGTERM, previous)
