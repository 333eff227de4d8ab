"""average_checkpoints through the real training job on the tiny task: the exported parameters are the mean of
the last N checkpoints' parameters (read from the training state as each checkpoint completes), fewer when fewer
exist, exactly the best checkpoint with 0, and the same after a stop (SIGTERM's path) and a resume."""

import json
import os
import signal

import mxnet as mx
import numpy as np
import pytest

from seq2seq import train_job
from seq2seq.model_dir import load_model
from seq2seq.training import checkpoint_averaging as averaging
from seq2seq.training import training_state as ts
from seq2seq.training.trainer import StopTraining, TrainingHooks
from tests.integration.test_resume import make_tree

pytestmark = pytest.mark.slow

UPDATES, EVERY = 50, 10            # 5 checkpoints


def run_job(base: str, stop_at: int = None):
    """train_job.main in this process on the tree `base`, stopped after update `stop_at` as SIGTERM stops it;
    returns (exit code, {checkpoint number: the parameters of the training state saved at that checkpoint})."""
    seen = {}

    def on_checkpoint(record):
        loaded = mx.nd.load(ts.params_path(os.path.join(base, "checkpoints")))
        seen[record["checkpoint"]] = {name: value.asnumpy().astype(np.float64) for name, value in loaded.items()}

    def on_update(state):
        if state.num_updates == stop_at:
            raise StopTraining
    previous_handler, previous_base = signal.getsignal(signal.SIGTERM), os.environ.get("SAGEMAKER_BASE_DIR")
    os.environ["SAGEMAKER_BASE_DIR"] = base
    try:
        code = train_job.main(hooks=TrainingHooks(on_update=on_update, on_checkpoint=on_checkpoint))
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if previous_base is None:
            del os.environ["SAGEMAKER_BASE_DIR"]
        else:
            os.environ["SAGEMAKER_BASE_DIR"] = previous_base
    return code, seen


def tree(base, average):
    return make_tree(base, max_num_batches=UPDATES, checkpoint_frequency_num_batches=EVERY,
                     average_checkpoints=average, bleu_sample_size=8, beam_size=2)


def exported(base) -> dict:
    return {k: v.asnumpy() for k, v in mx.nd.load(os.path.join(base, "model", "params.best")).items()}


def model_metrics(base) -> dict:
    with open(os.path.join(base, "model", "metrics.json")) as stream:
        return json.load(stream)


def kept_files(base) -> dict:
    directory = os.path.join(base, "checkpoints")
    return {n: {k: v.asnumpy() for k, v in mx.nd.load(averaging.kept_path(directory, n)).items()}
            for n in averaging.kept_checkpoints(directory)}


def assert_mean_of(base, checkpoint_parameters: dict, numbers):
    ours = exported(base)
    assert ours.keys() == checkpoint_parameters[numbers[0]].keys()
    for name in ours:
        expected = np.mean([checkpoint_parameters[n][name] for n in numbers], axis=0)
        np.testing.assert_allclose(ours[name], expected, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.fixture(scope="module")
def averaged_run(tmp_path_factory):
    """One uninterrupted run with average_checkpoints=3."""
    base = tree(tmp_path_factory.mktemp("averaged"), 3)
    code, seen = run_job(base)
    assert code == 0
    assert sorted(seen) == [1, 2, 3, 4, 5]
    return base, seen


def test_the_exported_model_is_the_mean_of_the_last_n_checkpoints(averaged_run):
    base, checkpoints = averaged_run
    assert_mean_of(base, checkpoints, [3, 4, 5])
    best = {k: v.asnumpy() for k, v in mx.nd.load(ts.best_params_path(os.path.join(base, "checkpoints"))).items()}
    assert any(not np.allclose(best[name], exported(base)[name]) for name in best)
    assert averaging.kept_checkpoints(os.path.join(base, "checkpoints")) == [2, 3, 4, 5]   # N + 1 at most
    summary = model_metrics(base)["averaged_checkpoints"]
    assert summary["checkpoints"] == [3, 4, 5] and summary["updates"] == [30, 40, 50]
    assert np.isfinite(summary["validation_perplexity"]) and 0 <= summary["validation_accuracy"] <= 1
    assert "validation_bleu" in summary
    model, _, _, _ = load_model(os.path.join(base, "model"))   # a complete, loadable model directory
    for name, value in model._collect_params_with_prefix().items():
        np.testing.assert_array_equal(value.data().asnumpy(), exported(base)[name])


def test_n_larger_than_the_checkpoints_averages_them_all(tmp_path):
    base = tree(tmp_path, 10)
    code, checkpoints = run_job(base)
    assert code == 0 and sorted(checkpoints) == [1, 2, 3, 4, 5]
    assert_mean_of(base, checkpoints, [1, 2, 3, 4, 5])
    assert model_metrics(base)["averaged_checkpoints"]["checkpoints"] == [1, 2, 3, 4, 5]


def test_without_averaging_the_best_checkpoint_is_exported_as_before(tmp_path):
    base = tree(tmp_path, 0)
    code, _ = run_job(base)
    assert code == 0
    best = mx.nd.load(ts.best_params_path(os.path.join(base, "checkpoints")))
    ours = exported(base)
    assert ours.keys() == best.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], best[name].asnumpy())
    assert not os.path.exists(averaging.kept_dir(os.path.join(base, "checkpoints")))
    assert "averaged_checkpoints" not in model_metrics(base)


@pytest.mark.parametrize("stop_at", [25, 30])
def test_stop_and_resume_keeps_and_averages_the_same_parameters(tmp_path, averaged_run, stop_at):
    """Stopped between checkpoints (25) or at a checkpoint update (30, before its evaluation), then resumed."""
    reference, _ = averaged_run
    base = tree(tmp_path, 3)
    code, _ = run_job(base, stop_at=stop_at)
    assert code == 0
    assert "averaged_checkpoints" not in model_metrics(base) or \
        "validation_perplexity" not in model_metrics(base)["averaged_checkpoints"]   # no evaluation after a stop
    code, _ = run_job(base)
    assert code == 0
    ours, theirs = kept_files(base), kept_files(reference)
    assert sorted(ours) == sorted(theirs) == [2, 3, 4, 5]
    for number in ours:
        for name in ours[number]:
            np.testing.assert_allclose(ours[number][name], theirs[number][name], rtol=1e-4, atol=1e-6,
                                       err_msg=f"checkpoint {number} {name}")
    mine, expected = exported(base), exported(reference)
    for name in mine:
        np.testing.assert_allclose(mine[name], expected[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert model_metrics(base)["averaged_checkpoints"]["checkpoints"] == [3, 4, 5]
