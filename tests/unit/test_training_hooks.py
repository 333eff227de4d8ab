"""TrainingHooks: when the loop calls on_update and on_checkpoint, with what, and stopping from a hook."""

import json
import os

import mxnet as mx
import numpy as np
import pytest

from seq2seq.training import training_state as ts
from seq2seq.training.trainer import StopTraining, TrainingHooks
from tests.unit.test_loss_and_schedule import build_trainer, parameters_of, save_initial_parameters

# 5 updates, checkpoints after updates 2 and 4 and a final one at 5; some dropout, so that resuming must be exact.
SETTINGS = dict(max_num_batches=5, checkpoint_frequency_num_batches=2, log_frequency_num_batches=3,
                embed_dropout_source=0.2, optimizer_type="adam", learning_rate=0.01, input_feeding=False)


@pytest.fixture(scope="module")
def initial_parameters(tmp_path_factory):
    return save_initial_parameters(tmp_path_factory.mktemp("initial"), input_feeding=False)


def trainer_with(tmp_path, name, initial_parameters, hooks=None):
    return build_trainer(tmp_path, name, [mx.cpu(0)], initial_parameters, hooks=hooks, **SETTINGS)


def saved_state(trainer) -> dict:
    with open(os.path.join(ts.state_dir(trainer.setup.checkpoint_dir), ts.STATE_FILE)) as stream:
        return json.load(stream)


def saved_history(trainer) -> list:
    with open(os.path.join(trainer.setup.output_data_dir, "metrics.json")) as stream:
        return json.load(stream)


def test_hooks_are_called_after_each_update_and_each_checkpoint_in_order(tmp_path, initial_parameters):
    events, states, records = [], [], []
    holder = {}

    def on_update(state):
        events.append(("update", state.num_updates, state.batch_index))
        states.append(state)

    def on_checkpoint(record):
        trainer = holder["trainer"]
        # The checkpoint is complete when the hook runs: the state is saved and the metric files hold the record.
        assert saved_state(trainer)["num_updates"] == record["updates"]
        assert saved_history(trainer)[-1]["updates"] == record["updates"]
        events.append(("checkpoint", record["updates"], record["checkpoint"]))
        records.append(record)

    trainer = holder["trainer"] = trainer_with(tmp_path, "run", initial_parameters,
                                               TrainingHooks(on_update=on_update, on_checkpoint=on_checkpoint))
    batches_per_epoch = trainer.setup.train_iter.num_batches()
    state = trainer.fit()
    assert [e for e in events if e[0] == "update"] == [
        ("update", n, (n - 1) % batches_per_epoch + 1) for n in range(1, 6)]
    assert [e[:2] for e in events] == [("update", 1), ("update", 2), ("checkpoint", 2), ("update", 3),
                                       ("update", 4), ("checkpoint", 4), ("update", 5), ("checkpoint", 5)]
    assert [e[2] for e in events if e[0] == "checkpoint"] == [1, 2, 3]
    assert all(s is state for s in states)          # the loop's own state, not a copy
    assert records == state.history and all(mine is theirs for mine, theirs in zip(records, state.history))
    assert all(isinstance(r["improved"], bool) and r["validation_perplexity"] > 1 for r in records)
    assert state.num_updates == 5 and not trainer.interrupted


def assert_same_parameters(ours, theirs):
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_stop_training_from_on_update_saves_a_checkpoint_that_resumes_exactly(tmp_path, initial_parameters):
    reference = trainer_with(tmp_path, "reference", initial_parameters)
    reference_state = reference.fit()

    seen = []

    def stop_at_3(state):
        seen.append(state.num_updates)
        if state.num_updates == 3:
            raise StopTraining

    stopped = trainer_with(tmp_path, "resumed", initial_parameters, TrainingHooks(on_update=stop_at_3))
    state = stopped.fit()
    assert seen == [1, 2, 3]                         # no update after the stop
    assert stopped.interrupted and state.num_updates == 3
    assert saved_state(stopped)["num_updates"] == 3
    assert [r["updates"] for r in state.history] == [2]   # stopped without evaluating

    resumed = trainer_with(tmp_path, "resumed", initial_parameters)
    resumed_state = resumed.fit()
    assert not resumed.interrupted
    assert [r["updates"] for r in resumed_state.history] == [r["updates"] for r in reference_state.history]
    for mine, theirs in zip(resumed_state.history, reference_state.history):
        assert mine["validation_perplexity"] == pytest.approx(theirs["validation_perplexity"], rel=1e-5)
        assert mine["train_perplexity"] == pytest.approx(theirs["train_perplexity"], rel=1e-5)
    assert_same_parameters(parameters_of(resumed), parameters_of(reference))


def test_stop_training_from_on_checkpoint_stops_after_that_checkpoint(tmp_path, initial_parameters):
    updates = []

    def stop(record):
        raise StopTraining

    trainer = trainer_with(tmp_path, "run", initial_parameters,
                           TrainingHooks(on_update=lambda state: updates.append(state.num_updates),
                                         on_checkpoint=stop))
    state = trainer.fit()
    assert updates == [1, 2] and trainer.interrupted
    assert [r["updates"] for r in state.history] == [2]
    assert saved_state(trainer)["num_updates"] == 2


def test_any_other_exception_from_a_hook_ends_fit_with_it(tmp_path, initial_parameters):
    class Boom(Exception):
        pass

    def explode(state):
        if state.num_updates == 2:
            raise Boom

    trainer = trainer_with(tmp_path, "run", initial_parameters, TrainingHooks(on_update=explode))
    with pytest.raises(Boom):
        trainer.fit()
    assert not trainer.interrupted
