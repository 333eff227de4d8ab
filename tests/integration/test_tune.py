"""`python -m seq2seq.tune` on the tiny copy task: every trial is the real training job (a few seconds each).

A 2-trial study end to end, resuming it, an interrupted search, pruning that SIGTERMs a job, the wall-time cap,
failing jobs, and bad input refused before the first trial."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest

from seq2seq.hyperparameters import load_hyperparameters_file
from seq2seq.search_space import load_search_space
from seq2seq.tune.cli import main
from seq2seq.tune.sampling import distributions
from seq2seq.tune.search import SearchSettings, run_search
from seq2seq.tune.study_store import storage_url
from seq2seq.tune.trial_runner import TrialSettings
from tests.sagemaker_tree import REPO_ROOT, TINY_MODEL, copy_task_pairs, wait_for_file, write_tree

BASE = {**{k: str(v) for k, v in TINY_MODEL.items()}, "max_num_batches": "40", "bleu_sample_size": "10",
        "beam_size": "2", "tensorboard": "false", "seed": "7"}
SPACE = """\
learning_rate: {type: continuous, min: 0.002, max: 0.01, scaling: logarithmic}
rnn_attention_type: {type: categorical, values: [mlp, dot]}
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Prepared data as `recordio_tools prepare --output DIR` lays it out: one folder, four files."""
    root = tmp_path_factory.mktemp("tune_data")
    write_tree(str(root / "tree"), {}, copy_task_pairs(300, seed=1), copy_task_pairs(30, seed=2))
    flat = root / "prepared"
    flat.mkdir()
    for channel in ("train", "validation", "vocab"):
        for path in (root / "tree" / "input" / "data" / channel).iterdir():
            shutil.copy(path, flat / path.name)
    return flat


@pytest.fixture
def search_files(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    (tmp_path / "base.json").write_text(json.dumps(BASE))
    return tmp_path


def tune(files, data_dir, *extra, trials=2):
    return main(["--space", str(files / "space.yaml"), "--data", str(data_dir), "--trials", str(trials),
                 "--hyperparameters", str(files / "base.json"), "--work-dir", str(files / "work"),
                 "--poll-seconds", "0.2", "--threads", "1", *extra])


def results_of(work):
    return json.loads((work / "results.json").read_text())


def test_two_trial_study_end_to_end(search_files, data_dir, capsys):
    queued = '{"learning_rate": 0.003, "rnn_attention_type": "dot"}'
    assert tune(search_files, data_dir, "--enqueue", queued, "--seed", "5") == 0
    work = search_files / "work"
    report = results_of(work)
    trials = report["trials"]
    assert [t["state"] for t in trials] == ["complete", "complete"]
    assert trials[0]["hyperparameters"] == {"learning_rate": "0.003", "rnn_attention_type": "dot"}
    assert all(t["checkpoints"] == 2 and t["updates"] == 40 and t["value"] >= 0 for t in trials)
    with open(work / "results.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["trial"] for row in rows] == ["0", "1"] and float(rows[1]["value"]) == trials[1]["value"]
    # each trial ran in its own tree with base + sampled values, as strings
    for trial in trials:
        tree = work / "trials" / f"{trial['trial']:04d}"
        written = json.loads((tree / "input" / "config" / "hyperparameters.json").read_text())
        assert written == {**BASE, **trial["hyperparameters"]}
        assert (tree / "model" / "params.best").exists() and not (tree / "checkpoints").exists()
    best = max(trials, key=lambda t: t["value"])
    assert report["best_trial"] == best["trial"]
    typed = load_hyperparameters_file(str(work / "best" / "hyperparameters.json"))
    assert typed.learning_rate == float(best["hyperparameters"]["learning_rate"]) and typed.rnn_num_hidden == 32
    assert all(isinstance(v, str) for v in json.loads((work / "best" / "hyperparameters.json").read_text()).values())
    assert (work / "trials.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert f"best: trial {best['trial']}" in printed and "learning_rate" in printed


def test_a_rerun_resumes_the_study(search_files, data_dir, capsys):
    work = search_files / "work"
    assert tune(search_files, data_dir, trials=1) == 0
    first = results_of(work)["trials"]
    first_log = (work / "trials" / "0000" / "train.log").stat().st_mtime_ns
    assert tune(search_files, data_dir, trials=2) == 0
    trials = results_of(work)["trials"]
    assert len(trials) == 2 and trials[0] == first[0]
    assert (work / "trials" / "0000" / "train.log").stat().st_mtime_ns == first_log  # trial 0 did not run again
    assert trials[1]["hyperparameters"] != trials[0]["hyperparameters"]  # the resumed sampler draws anew
    assert "resuming study 'seq2seq'" in capsys.readouterr().out
    assert tune(search_files, data_dir, trials=2) == 0  # nothing left to do
    assert len(results_of(work)["trials"]) == 2


def test_a_trial_left_running_by_a_killed_search_runs_again(search_files, data_dir):
    work = search_files / "work"
    assert tune(search_files, data_dir, trials=1) == 0
    # a search killed with SIGKILL leaves its trial RUNNING in the study
    study = optuna.load_study(study_name="seq2seq", storage=storage_url(work))
    ranges = load_search_space(search_files / "space.yaml")
    left = study.ask(distributions(ranges))
    assert tune(search_files, data_dir, trials=2) == 0
    trials = results_of(work)["trials"]
    assert [(t["state"], t["interrupted"]) for t in trials] == [
        ("complete", False), ("failed", True), ("complete", False)]
    assert "interrupted" in trials[1]["failure"]
    rerun = trials[2]["hyperparameters"]
    assert float(rerun["learning_rate"]) == pytest.approx(left.params["learning_rate"], rel=1e-9)
    assert rerun["rnn_attention_type"] == left.params["rnn_attention_type"]


def test_sigterm_stops_the_search_and_its_job_and_a_rerun_finishes(search_files, data_dir):
    base = dict(BASE, max_num_batches="100000")
    (search_files / "base.json").write_text(json.dumps(base))
    command = [sys.executable, "-m", "seq2seq.tune", "--space", str(search_files / "space.yaml"), "--data",
               str(data_dir), "--trials", "1", "--hyperparameters", str(search_files / "base.json"), "--work-dir",
               str(search_files / "work"), "--poll-seconds", "0.2", "--threads", "1", "--pruner", "none"]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    search = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    metrics = search_files / "work" / "trials" / "0000" / "output" / "data" / "metrics.json"
    assert wait_for_file(str(metrics), timeout=60, process=search)
    search.send_signal(signal.SIGTERM)
    out, err = search.communicate(timeout=120)
    assert search.returncode == 130, err
    assert "interrupted: the running trial was stopped" in err
    log = (search_files / "work" / "trials" / "0000" / "train.log").read_text()
    assert "SIGTERM received" in log
    trials = results_of(search_files / "work")["trials"]
    assert [(t["state"], t["interrupted"]) for t in trials] == [("failed", True)]
    (search_files / "base.json").write_text(json.dumps(BASE))
    assert tune(search_files, data_dir, trials=1) == 0
    trials = results_of(search_files / "work")["trials"]
    assert [t["state"] for t in trials] == ["failed", "complete"]
    assert trials[1]["hyperparameters"] == trials[0]["hyperparameters"]  # the interrupted sample runs again


def test_the_pruner_sigterms_a_poor_trial(search_files, data_dir):
    hyperparameters = dict(BASE, max_num_batches="100000", checkpoint_frequency_num_batches="20")
    settings = SearchSettings(
        ranges=load_search_space(search_files / "space.yaml"), space_source="space.yaml",
        work_dir=search_files / "work", trials=1, base=hyperparameters,
        trial=TrialSettings(data_dir=data_dir, objective="validation:perplexity", poll_seconds=0.2, threads=1))
    start = time.monotonic()
    # every perplexity is above 1: this pruner stops the trial at its first checkpoint
    study = run_search(settings, pruner=optuna.pruners.ThresholdPruner(upper=1.0), log=lambda line: None)
    assert time.monotonic() - start < 60  # 100,000 updates would take many minutes
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [20] and trial.user_attrs["pruned_step"] == 20
    assert trial.user_attrs["updates"] < 100
    tree = search_files / "work" / "trials" / "0000"
    assert "SIGTERM received" in (tree / "train.log").read_text()
    assert (tree / "output" / "success").exists() and (tree / "model" / "params.best").exists()
    assert results_of(search_files / "work")["trials"][0]["state"] == "pruned"


def test_the_time_cap_stops_trials_and_one_without_a_checkpoint_fails(search_files, data_dir):
    (search_files / "space.yaml").write_text(
        SPACE + "checkpoint_frequency_num_batches: {type: categorical, values: [20, 100000]}\n")
    (search_files / "base.json").write_text(json.dumps(dict(BASE, max_num_batches="100000")))
    assert tune(search_files, data_dir, "--trial-minutes", "0.12", "--pruner", "none", "--objective",
                "validation:perplexity", "--enqueue", '{"checkpoint_frequency_num_batches": 20}',
                '{"checkpoint_frequency_num_batches": 100000}') == 0
    capped, silent = results_of(search_files / "work")["trials"]
    assert capped["state"] == "complete" and capped["capped"] and capped["checkpoints"] >= 1
    assert capped["value"] == min(r["validation_perplexity"] for r in json.loads(
        (search_files / "work" / "trials" / "0000" / "output" / "data" / "metrics.json").read_text()))
    assert silent["state"] == "failed" and silent["checkpoints"] == 0
    assert silent["failure"].startswith("no checkpoint within --trial-minutes 0.12")


def test_a_failing_job_is_recorded_with_its_failure_line_and_the_search_goes_on(search_files, data_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(data_dir, broken)
    (broken / "val.rec").write_bytes(b"not a recordio file at all")
    assert tune(search_files, broken) == 0
    trials = results_of(search_files / "work")["trials"]
    assert [t["state"] for t in trials] == ["failed", "failed"]
    assert all(t["failure"].startswith("UserError: ") and "val.rec" in t["failure"] for t in trials)
    assert not (search_files / "work" / "best").exists()


@pytest.mark.parametrize("space, extra, words", [
    ("learning_rate: {type: continuous, min: 0.01, max: 0.002}\n", [], "entry 'learning_rate': empty range"),
    ("lerning_rate: {type: continuous, min: 0.001, max: 0.002}\n", [], "entry 'lerning_rate': unknown hyperparameter"),
    ("rnn_num_hidden: {type: continuous, min: 16, max: 64}\n", [], "entry 'rnn_num_hidden'"),
    (SPACE, ["--hp", "learning_rate=0.001"], "'learning_rate' is both static and in the search space"),
    (SPACE, ["--hp", "bleu_sample_size=0"], "validation:bleu needs BLEU at every checkpoint"),
    (SPACE, ["--enqueue", '{"learning_rate": 0.5}'], "'learning_rate' = 0.5 is outside"),
])
def test_bad_input_fails_in_one_line_before_any_trial(search_files, data_dir, space, extra, words):
    (search_files / "space.yaml").write_text(space)
    command = [sys.executable, "-m", "seq2seq.tune", "--space", str(search_files / "space.yaml"), "--data",
               str(data_dir), "--trials", "2", "--hyperparameters", str(search_files / "base.json"), "--work-dir",
               str(search_files / "work"), *extra]
    result = subprocess.run(command, cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=REPO_ROOT),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (search_files / "work").exists()
