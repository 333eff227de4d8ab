"""seq2seq.tune without jobs: ranges as Optuna distributions and back, queued settings, the container command,
the results table and plot."""

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from seq2seq.errors import UserError
from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.local_job import container_command
from seq2seq.search_space import parse_search_space
from seq2seq.tune import results
from seq2seq.tune.sampling import distributions, enqueued_params, hyperparameter_values

SPACE = parse_search_space({
    "learning_rate": {"type": "continuous", "min": 0.0005, "max": 0.003, "scaling": "logarithmic"},
    "rnn_decoder_hidden_dropout": {"type": "continuous", "min": 0.0, "max": 0.4},
    "num_layers_encoder": {"type": "integer", "min": 1, "max": 2},
    "rnn_attention_type": {"type": "categorical", "values": ["mlp", "dot"]},
    "adam_beta2": {"type": "continuous", "min": 0.99, "max": 0.9999, "scaling": "reverse_logarithmic"},
    "input_feeding": {"type": "categorical", "values": [True, False]},
}, "space.yaml")


def test_each_range_becomes_its_distribution():
    assert distributions(SPACE) == {
        "learning_rate": FloatDistribution(0.0005, 0.003, log=True),
        "rnn_decoder_hidden_dropout": FloatDistribution(0.0, 0.4),
        "num_layers_encoder": IntDistribution(1, 2),
        "rnn_attention_type": CategoricalDistribution(["mlp", "dot"]),
        "one_minus_adam_beta2": FloatDistribution(1 - 0.9999, 1 - 0.99, log=True),
        "input_feeding": CategoricalDistribution(["true", "false"]),
    }


def test_sampled_values_are_strings_the_gate_accepts_and_stay_in_their_ranges():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    betas = []
    for _ in range(200):
        values = hyperparameter_values(SPACE, study.ask(distributions(SPACE)).params)
        assert all(isinstance(v, str) for v in values.values())
        typed = parse_hyperparameters(values)
        assert 0.0005 <= typed.learning_rate <= 0.003 and typed.num_layers_encoder in (1, 2)
        assert 0.99 <= typed.adam_beta2 <= 0.9999
        betas.append(typed.adam_beta2)
    # reverse logarithmic: 1 - beta2 is log-uniform over [1e-4, 1e-2], so about half the draws are above 0.999
    above = sum(beta > 0.999 for beta in betas) / len(betas)
    assert 0.35 < above < 0.65, above


def test_queued_settings_take_the_searched_names_and_respect_the_ranges():
    recipe = {"learning_rate": "0.0015", "rnn_attention_type": "mlp", "input_feeding": "False", "batch_size": "64",
              "num_layers_encoder": "2.0", "adam_beta2": "0.999"}
    params = enqueued_params(SPACE, recipe, "recipe.json")
    assert params["learning_rate"] == 0.0015 and params["num_layers_encoder"] == 2
    assert params["input_feeding"] == "false" and params["rnn_attention_type"] == "mlp"
    assert math.isclose(params["one_minus_adam_beta2"], 0.001)
    assert "batch_size" not in params
    with pytest.raises(UserError, match="recipe.json: 'learning_rate' = '0.01' is outside"):
        enqueued_params(SPACE, {"learning_rate": "0.01"}, "recipe.json")
    with pytest.raises(UserError, match="'rnn_attention_type' = 'bilinear' is not one of"):
        enqueued_params(SPACE, {"rnn_attention_type": "bilinear"}, "x")
    with pytest.raises(UserError, match="names none of the searched"):
        enqueued_params(SPACE, {"batch_size": "64"}, "x")


def test_a_queued_trial_runs_with_exactly_those_values():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(enqueued_params(SPACE, {"learning_rate": 0.0015, "adam_beta2": 0.999}, "x"))
    values = hyperparameter_values(SPACE, study.ask(distributions(SPACE)).params)
    assert values["learning_rate"] == "0.0015" and values["adam_beta2"] == "0.999"


def test_the_container_command_is_sagemakers_call(tmp_path):
    tree = tmp_path / "trials" / "0003"
    assert container_command("docker", "seq2seq:latest", tree) == [
        "docker", "run", "--rm", "-v", f"{tree.resolve()}:/opt/ml", "seq2seq:latest", "train"]
    assert container_command("podman", "img", tree, threads=2, name="seq2seq-tune-3") == [
        "podman", "run", "--rm", "-v", f"{tree.resolve()}:/opt/ml", "--name", "seq2seq-tune-3",
        "-e", "OMP_NUM_THREADS=2", "img", "train"]
    assert container_command("podman", "img", tree, extra=["--runtime", "runc"])[-4:] == [
        "--runtime", "runc", "img", "train"]
    with pytest.raises(UserError, match="'nerdctl' is not supported"):
        container_command("nerdctl", "img", tree)


ROWS = [
    {"trial": 0, "state": "complete", "value": 30.5, "hyperparameters": {"learning_rate": "0.001"}, "updates": 900,
     "wall_seconds": 400.0, "interrupted": False},
    {"trial": 1, "state": "pruned", "value": 12.0, "hyperparameters": {"learning_rate": "0.003"}, "updates": 300,
     "wall_seconds": 100.0, "interrupted": False},
    {"trial": 2, "state": "failed", "value": None, "hyperparameters": {"learning_rate": "0.002"}, "updates": None,
     "wall_seconds": None, "interrupted": True},
]


def test_the_table_marks_the_best_trial_and_the_interrupted_one():
    lines = results.table(ROWS, ["learning_rate"], best_number=0).splitlines()
    assert lines[0].split() == ["trial", "state", "value", "updates", "seconds", "learning_rate"]
    assert lines[1].split() == ["0*", "complete", "30.5", "900", "400.0", "0.001"]
    assert lines[3].split() == ["2", "failed", "(interrupted)", "-", "-", "-", "0.002"]


def test_the_plot_is_a_png_with_or_without_values():
    for rows in (ROWS, [ROWS[2]], []):
        assert results.plot_png(rows, "validation:bleu", maximize=True)[:8] == b"\x89PNG\r\n\x1a\n"
