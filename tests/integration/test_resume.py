"""Stopping (SIGTERM) and resuming from /opt/ml/checkpoints gives the same training as an uninterrupted run.

Dropout is on, so equality needs the per-update reseeding and the saved iterator, optimizer and scheduler state.
"""

import json
import os
import signal
import time

import mxnet as mx
import numpy as np
import pytest

from tests.sagemaker_tree import (TINY_MODEL, copy_task_pairs, read_failure, run_train_job, start_train_job,
                                  wait_for_file, write_tree)

pytestmark = pytest.mark.slow

HYPERPARAMETERS = dict(TINY_MODEL, embed_dropout_source=0.2, embed_dropout_target=0.1, rnn_decoder_hidden_dropout=0.3,
                       checkpoint_frequency_num_batches=20, bleu_sample_size=0, seed=21,
                       plateau_reduce_lr_threshold=1, plateau_reduce_lr_factor=0.7, checkpoint_threshold=50,
                       log_frequency_num_batches=7)


def make_tree(base, **overrides):
    write_tree(str(base), dict(HYPERPARAMETERS, **overrides), copy_task_pairs(200, seed=1, reverse=True),
               copy_task_pairs(24, seed=2, reverse=True))
    return str(base)


def history_of(base):
    with open(os.path.join(base, "output", "data", "metrics.json")) as stream:
        return json.load(stream)


def state_of(base):
    with open(os.path.join(base, "checkpoints", "training_state", "state.json")) as stream:
        return json.load(stream)


def final_parameters(base):
    return {k: v.asnumpy() for k, v in mx.nd.load(os.path.join(base, "model", "params.best")).items()}


def assert_same_training(resumed_base, reference_base):
    resumed, reference = history_of(resumed_base), history_of(reference_base)
    assert [r["updates"] for r in resumed] == [r["updates"] for r in reference]
    for mine, theirs in zip(resumed, reference):
        assert mine["validation_perplexity"] == pytest.approx(theirs["validation_perplexity"], rel=1e-4)
        assert mine["learning_rate"] == pytest.approx(theirs["learning_rate"], rel=1e-9)
        assert mine["train_perplexity"] == pytest.approx(theirs["train_perplexity"], rel=1e-4)
    assert state_of(resumed_base)["num_updates"] == state_of(reference_base)["num_updates"]
    ours, theirs = final_parameters(resumed_base), final_parameters(reference_base)
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-6, err_msg=name)


# ----- in-process: a stop requested at a chosen update, as the SIGTERM handler requests it (request_stop) -----



@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted run of 50 updates (3 checkpoints: 20, 40 and the final one at 50)."""
    base = make_tree(tmp_path_factory.mktemp("reference"), max_num_batches=50)
    result = run_train_job(base)
    assert result.returncode == 0, result.stdout[-4000:]
    assert [r["updates"] for r in history_of(base)] == [20, 40, 50]
    return base


@pytest.mark.parametrize("stop_at", [7, 20])
def test_stop_and_resume_in_process_equals_uninterrupted(tmp_path, in_process, reference_run, stop_at):
    base = make_tree(tmp_path, max_num_batches=50)
    assert in_process(base, stop_at=stop_at) == 0
    saved = state_of(base)
    assert saved["num_updates"] == stop_at
    assert read_failure(base) is None
    assert in_process(base) == 0
    assert_same_training(base, reference_run)


def test_stop_and_resume_with_two_cpu_devices(tmp_path, in_process):
    """Parameters and optimizer state live on both contexts: the restart must restore both."""
    reference = make_tree(tmp_path / "reference", devices="cpu:2", max_num_batches=30)
    assert in_process(reference) == 0
    base = make_tree(tmp_path / "resumed", devices="cpu:2", max_num_batches=30)
    assert in_process(base, stop_at=9) == 0
    assert state_of(base)["num_updates"] == 9
    assert in_process(base) == 0
    assert_same_training(base, reference)


def test_restarting_a_finished_job_changes_nothing(tmp_path, in_process):
    base = make_tree(tmp_path, max_num_batches=10)
    assert in_process(base) == 0
    before = history_of(base), final_parameters(base)
    assert in_process(base) == 0
    after = history_of(base), final_parameters(base)
    assert after[0] == before[0]
    for name in before[1]:
        np.testing.assert_array_equal(after[1][name], before[1][name])


# ----- a real SIGTERM to the job's process -----

def test_sigterm_saves_exits_zero_and_the_restart_ends_like_an_uninterrupted_run(tmp_path, reference_run):
    base = make_tree(tmp_path / "interrupted", max_num_batches=50)
    state_file = os.path.join(base, "checkpoints", "training_state", "state.json")
    process = start_train_job(base)
    try:
        assert wait_for_file(state_file, timeout=240, process=process), "no checkpoint appeared"
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        stop_seconds = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with open(os.path.join(base, "job.log"), encoding="utf-8", errors="replace") as stream:
        log = stream.read()
    assert code == 0, log[-4000:]
    assert stop_seconds < 30, f"the job took {stop_seconds:.1f} s to stop"
    stopped_at = state_of(base)["num_updates"]
    if stopped_at >= 50:
        pytest.skip("the job finished before SIGTERM arrived (machine too slow to interrupt it in time)")
    assert "SIGTERM received" in log
    assert 20 <= stopped_at < 50
    result = run_train_job(base)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "resumed from" in result.stdout
    assert_same_training(base, reference_run)
