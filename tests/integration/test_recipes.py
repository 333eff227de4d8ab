"""Every recipe of recipes/ trains through the real job on the tiny task: its settings pass the gate, the job
finishes, the loss falls and the metric files are written.

Only the sizes (and what is measured in updates: checkpoints, warm-up, the end of training) are shrunk to the
tiny task; the optimiser, schedule, initialisation, normalisation, regularisation, tying and curriculum are the
recipe's own.
"""

import json
import os

import pytest

import recipes
from tests.sagemaker_tree import TINY_MODEL, copy_task_pairs, read_failure, run_train_job, write_tree

TINY_UPDATES = 40
TINY_CHECKPOINT = 10


def tiny_version(hyperparameters: dict) -> dict:
    """The recipe's hyperparameters with the tiny task's sizes and update counts."""
    values = dict(hyperparameters)
    values.update({key: str(value) for key, value in TINY_MODEL.items()
                   if key not in ("learning_rate", "batch_size")})
    if values.get("weight_tying") == "true":
        # tied matrices keep the recipe's equalities of widths
        values.update(num_embed_source=str(TINY_MODEL["rnn_num_hidden"]),
                      num_embed_target=str(TINY_MODEL["rnn_num_hidden"]))
    values.update(max_num_batches=str(TINY_UPDATES), checkpoint_frequency_num_batches=str(TINY_CHECKPOINT),
                  bleu_sample_size="10", beam_size="2", log_frequency_num_batches="5")
    if int(values.get("warmup_num_batches", "0")) > 0:
        values["warmup_num_batches"] = "4"
    if values.get("curriculum", "none") != "none":
        values["curriculum_short_length"] = "6"
    return values


def test_every_recipe_is_valid_and_documented():
    assert len(recipes.names()) >= 6
    for name in recipes.names():
        recipe = recipes.load(name)
        recipe.parsed()                                   # raises HyperparameterError when a setting is invalid
        assert recipe.source and recipe.adapted and recipe.title
    with open(os.path.join(os.path.dirname(recipes.RECIPES_DIR), "README.md"), encoding="utf-8") as stream:
        readme = stream.read()
    assert all(f"recipes/{name}/hyperparameters.json" in readme for name in recipes.names())


def test_unknown_recipe_is_named():
    with pytest.raises(ValueError, match="no recipe 'nope'"):
        recipes.load("nope")


@pytest.mark.parametrize("name", recipes.names())
def test_recipe_trains_on_the_tiny_task(name, tmp_path):
    hyperparameters = tiny_version(recipes.load(name).hyperparameters)
    write_tree(str(tmp_path), hyperparameters, copy_task_pairs(300, seed=1), copy_task_pairs(30, seed=2))
    result = run_train_job(str(tmp_path))
    assert result.returncode == 0, (read_failure(str(tmp_path)) or "") + result.stdout[-3000:]
    with open(os.path.join(tmp_path, "output", "data", "metrics.json")) as stream:
        history = json.load(stream)
    assert [record["updates"] for record in history] == list(range(TINY_CHECKPOINT, TINY_UPDATES + 1,
                                                                    TINY_CHECKPOINT))
    perplexities = [record["train_perplexity"] for record in history]
    assert perplexities[-1] < perplexities[0], perplexities        # the loss falls
    assert os.path.exists(os.path.join(tmp_path, "model", "params.best"))
