"""SIGKILL of the training job at chosen and at random points, then a restart: the result equals an
uninterrupted run. Single host and devices=cpu:2.

A SIGKILL gives the job no chance to save: the restart must resume from the last complete checkpoint
(the swap by renames guarantees one is there) and redo the lost updates exactly.
"""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.test_resume import assert_same_training, make_tree, state_of
from tests.sagemaker_tree import REPO_ROOT, job_environment, read_failure, run_train_job, start_train_job

pytestmark = pytest.mark.system
UPDATES = 50  # checkpoints at 20, 40 and 50


def killed_run(base: str, point: str, n: int) -> None:
    result = subprocess.run([sys.executable, "-m", "tests.system.kill_runner", point, str(n)], cwd=REPO_ROOT,
                            env=job_environment(base), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=600)
    assert result.returncode == -signal.SIGKILL, result.stdout[-3000:]


def resume(base: str) -> str:
    result = run_train_job(base, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    assert read_failure(base) is None
    return result.stdout


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    base = make_tree(tmp_path_factory.mktemp("reference"), max_num_batches=UPDATES)
    resume(base)
    return base


@pytest.fixture(scope="module")
def reference_cpu2(tmp_path_factory):
    base = make_tree(tmp_path_factory.mktemp("reference_cpu2"), max_num_batches=30, devices="cpu:2")
    resume(base)
    return base


@pytest.mark.parametrize("point, n, resumes_at", [
    ("update", 31, 20),       # during update 31: the checkpoint of update 20 is the last complete one
    ("evaluation", 2, 20),    # during the evaluation of the checkpoint at 40
    ("write", 2, 20),         # checkpoint 40 half written (parameters, not the optimizer or state.json)
    ("rename", 1, 20),        # checkpoint 40 complete, checkpoint 20 moved aside, not yet swapped in
                              # (the first save at 20 has nothing to move aside, so this is the first rename)
])
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, reference, point, n, resumes_at):
    base = make_tree(tmp_path, max_num_batches=UPDATES)
    killed_run(base, point, n)
    assert not os.path.exists(os.path.join(base, "output", "success"))
    output = resume(base)
    assert f"resumed from {os.path.join(base, 'checkpoints')} at update {resumes_at}" in output
    assert_same_training(base, reference)


def test_sigkill_at_random_moments_three_times_then_resume(tmp_path, reference):
    rng = random.Random(int(os.environ.get("SEQ2SEQ_TEST_SEED", "1234")))
    base = make_tree(tmp_path, max_num_batches=UPDATES)
    state_file = os.path.join(base, "checkpoints", "training_state", "state.json")
    for attempt in range(3):
        process = start_train_job(base)
        try:
            deadline = time.monotonic() + 300
            while not os.path.exists(state_file) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 3.0))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    resume(base)
    assert state_of(base)["num_updates"] == UPDATES
    assert_same_training(base, reference)


@pytest.mark.parametrize("point, n", [("update", 25), ("rename", 1)])  # checkpoints at 20 and 30
def test_sigkill_then_resume_with_two_cpu_devices(tmp_path, reference_cpu2, point, n):
    base = make_tree(tmp_path, max_num_batches=30, devices="cpu:2")
    killed_run(base, point, n)
    assert "at update 20" in resume(base)
    assert_same_training(base, reference_cpu2)
