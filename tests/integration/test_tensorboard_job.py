"""TensorBoard event files of real training jobs, read back with TensorBoard's own reader: the values of
metrics.json at every checkpoint, the configured location, one value per step after a crash and a resume, and
nothing at all with tensorboard=false."""

import json
import os
import signal

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2seq import train_job
from seq2seq.inference.translator import DecodeOptions, Translator
from seq2seq.training.trainer import TrainingHooks
from tests.sagemaker_tree import TINY_MODEL, copy_task_pairs, read_failure, run_train_job, write_tree

HYPERPARAMETERS = dict(TINY_MODEL, max_num_batches=40, checkpoint_frequency_num_batches=20,
                       log_frequency_num_batches=10, bleu_sample_size=10, beam_size=2, seed=7)
VALIDATION = copy_task_pairs(30, seed=2)
TRAIN_TAGS = ("train/loss", "train/perplexity", "train/learning_rate", "train/gradient_norm",
              "train/target_tokens_per_second")


def make_tree(base, hyperparameters, local_path=None):
    write_tree(str(base), hyperparameters, copy_task_pairs(300, seed=1), VALIDATION)
    if local_path is not None:
        with open(os.path.join(str(base), "input", "config", "tensorboardoutputconfig.json"), "w") as stream:
            json.dump({"LocalPath": local_path, "S3OutputPath": "s3://bucket/tensorboard"}, stream)


def read_events(directory: str) -> EventAccumulator:
    accumulator = EventAccumulator(directory, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


class Crash(Exception):
    """Stands for the job dying (not a stop request): the state stays at the last checkpoint."""


@pytest.fixture(scope="module")
def crashed_and_resumed(tmp_path_factory):
    """A job that crashes after update 35 (its last saved state is checkpoint 20's), then runs again to the end,
    in this process; TensorBoard's LocalPath comes from tensorboardoutputconfig.json."""
    base = tmp_path_factory.mktemp("opt_ml")
    make_tree(base, HYPERPARAMETERS, local_path="/opt/ml/custom/tensorboard")

    def crash_after_35(state):
        if state.num_updates == 35:
            raise Crash("simulated crash")
    saved, handler = os.environ.get("SAGEMAKER_BASE_DIR"), signal.getsignal(signal.SIGTERM)
    os.environ["SAGEMAKER_BASE_DIR"] = str(base)
    try:
        first = train_job.main(hooks=TrainingHooks(on_update=crash_after_35))
        assert first == 1 and "simulated crash" in read_failure(str(base))
        assert train_job.main() == 0
    finally:
        signal.signal(signal.SIGTERM, handler)   # the job installs its own
        if saved is None:
            os.environ.pop("SAGEMAKER_BASE_DIR")
        else:
            os.environ["SAGEMAKER_BASE_DIR"] = saved
    with open(os.path.join(str(base), "output", "data", "metrics.json")) as stream:
        history = json.load(stream)
    return str(base), read_events(os.path.join(str(base), "custom", "tensorboard")), history


def test_events_go_to_the_configured_local_path_only(crashed_and_resumed):
    base, _, _ = crashed_and_resumed
    names = os.listdir(os.path.join(base, "custom", "tensorboard"))
    assert len(names) == 2 and all(name.startswith("events.out.tfevents.") for name in names)   # one per run
    assert not os.path.exists(os.path.join(base, "output", "tensorboard"))


def test_checkpoint_scalars_equal_metrics_json(crashed_and_resumed):
    _, events, history = crashed_and_resumed
    assert [record["updates"] for record in history] == [20, 40]
    for name in ("perplexity", "accuracy", "bleu", "shortlist_coverage"):
        logged = [(event.step, event.value) for event in events.Scalars(f"validation/{name}")]
        assert logged == [(r["updates"], pytest.approx(r[f"validation_{name}"], rel=1e-6, abs=1e-9))
                          for r in history], name
    learning_rates = {event.step: event.value for event in events.Scalars("train/learning_rate")}
    for record in history:
        assert learning_rates[record["updates"]] == pytest.approx(record["learning_rate"], rel=1e-6)


def test_progress_scalars_have_one_value_per_logged_update_after_the_resume(crashed_and_resumed):
    _, events, _ = crashed_and_resumed
    for tag in TRAIN_TAGS:   # update 30 was logged by both runs: the resumed run's event file hides the first
        assert [event.step for event in events.Scalars(tag)] == [10, 20, 30, 40], tag
    values = {tag: [event.value for event in events.Scalars(tag)] for tag in TRAIN_TAGS}
    assert all(0.0 < loss < 10.0 for loss in values["train/loss"])
    assert values["train/perplexity"] == pytest.approx([2.718281828 ** loss for loss in values["train/loss"]],
                                                       rel=1e-5)
    assert all(norm > 0.0 for norm in values["train/gradient_norm"])
    assert all(rate > 0.0 for rate in values["train/target_tokens_per_second"])


def test_each_checkpoint_shows_validation_sentences_and_an_attention_heatmap(crashed_and_resumed):
    base, events, history = crashed_and_resumed
    texts = events.Tensors("validation/samples/text_summary")
    images = events.Images("validation/attention")
    assert [t.step for t in texts] == [20, 40] and [i.step for i in images] == [20, 40]
    assert all(image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and image.width > 100 for image in images)
    rows = texts[-1].tensor_proto.string_val[0].decode("utf-8").splitlines()[2:]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    assert [(c[1], c[2]) for c in cells] == [(" ".join(s), " ".join(t)) for s, t in VALIDATION[:3]]
    # The exported model is checkpoint 40's (perplexity fell): its translations are the table's hypotheses.
    with open(os.path.join(base, "model", "metrics.json")) as stream:
        assert json.load(stream)["best_checkpoint"]["updates"] == 40
    translator = Translator.load(os.path.join(base, "model"))
    translations = translator.translate_text([" ".join(s) for s, _ in VALIDATION[:3]], DecodeOptions(beam_size=2))
    assert [c[3] for c in cells] == [t.text for t in translations]


def test_tensorboard_false_writes_no_event_files(tmp_path):
    make_tree(tmp_path, dict(HYPERPARAMETERS, max_num_batches=20, tensorboard="false"),
              local_path="/opt/ml/custom/tensorboard")
    result = run_train_job(str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    assert os.path.exists(os.path.join(str(tmp_path), "output", "data", "metrics.json"))
    assert not os.path.exists(os.path.join(str(tmp_path), "custom"))
    assert not os.path.exists(os.path.join(str(tmp_path), "output", "tensorboard"))
    assert "TensorBoard" not in result.stdout
