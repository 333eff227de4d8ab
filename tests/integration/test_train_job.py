"""The training job end to end on a local /opt/ml tree: outputs, metric lines, devices, and the failure funnel."""

import csv
import json
import os
import re
import shutil
import signal
import struct
import subprocess

import mxnet as mx
import numpy as np
import pytest

import seq2seq.train_job as train_job
from seq2seq.data.recordio_codec import RecordWriter
from seq2seq.data.vocab import Vocabulary
from seq2seq.inference.translator import DecodeOptions, Translator
from seq2seq.training.metrics_log import METRIC_REGEXES
from tests.sagemaker_tree import (REPO_ROOT, TINY_MODEL, copy_task_pairs, job_environment, read_failure,
                                  run_train_job, write_hyperparameters, write_tree)

QUICK = dict(TINY_MODEL, max_num_batches=40, checkpoint_frequency_num_batches=20, bleu_sample_size=10,
             beam_size=2, seed=7)
LINE = re.compile(r"^#quality_metric: host=algo-1, epoch=(\d+), batch=(\d+) (validation|train) "
                  r"(bleu|perplexity|accuracy) <score>=([0-9.eE+-]+)$")


def make_tree(base, hyperparameters=None, num_train=300, num_validation=30):
    return write_tree(str(base), QUICK if hyperparameters is None else hyperparameters,
                      copy_task_pairs(num_train, seed=1), copy_task_pairs(num_validation, seed=2))


# ----- a successful run -----

@pytest.fixture(scope="module")
def finished_job(tmp_path_factory):
    base = tmp_path_factory.mktemp("opt_ml")
    make_tree(base)
    result = run_train_job(str(base))
    assert result.returncode == 0, result.stdout[-4000:]
    return str(base), result.stdout


def test_job_succeeds_without_failure_file(finished_job):
    base, _ = finished_job
    assert read_failure(base) is None
    assert os.path.exists(os.path.join(base, "output", "success"))


def test_model_dir_holds_what_serving_needs(finished_job):
    base, _ = finished_job
    model_dir = os.path.join(base, "model")
    names = set(os.listdir(model_dir))
    assert {"params.best", "config.json", "vocab.src.json", "vocab.trg.json", "metrics.json", "shortlist.npz"} <= names
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")], names
    with open(os.path.join(model_dir, "config.json")) as stream:
        config = json.load(stream)
    assert config["model"]["rnn_num_hidden"] == 32 and config["model"]["max_seq_len_source"] == 12
    assert config["beam_size"] == 2
    with open(os.path.join(model_dir, "metrics.json")) as stream:
        metrics = json.load(stream)
    assert metrics["num_updates"] == 40 and metrics["num_checkpoints"] == 2
    assert metrics["best_checkpoint"]["checkpoint"] in (1, 2)
    translator = Translator.load(model_dir)
    assert translator.default_options.beam_size == 2
    source_vocab = Vocabulary.load(os.path.join(base, "input", "data", "vocab", "vocab.src.json"))
    assert translator.source_vocab.token_to_id() == source_vocab.token_to_id()
    results = translator.translate_text(["w1 w2 w3", "w4"], DecodeOptions(beam_size=2, attention_matrix=True))
    assert len(results) == 2
    assert all(set(r.target_tokens) <= set(translator.target_vocab.id_to_token) for r in results)
    assert results[0].attention.shape == (len(results[0].target_ids), 3)


def test_metric_files_cover_every_checkpoint(finished_job):
    base, _ = finished_job
    data_dir = os.path.join(base, "output", "data")
    with open(os.path.join(data_dir, "metrics.json")) as stream:
        history = json.load(stream)
    assert [r["updates"] for r in history] == [20, 40]
    for record in history:
        assert record["validation_perplexity"] >= 1.0
        assert 0.0 <= record["validation_accuracy"] <= 1.0
        assert 0.0 <= record["validation_bleu"] <= 100.0
        assert 0.0 < record["validation_shortlist_coverage"] <= 1.0     # the shortlist against the full search
    with open(os.path.join(data_dir, "metrics.csv")) as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["updates"]) for r in rows] == [20, 40]
    assert float(rows[1]["validation_perplexity"]) == pytest.approx(history[1]["validation_perplexity"])
    with open(os.path.join(data_dir, "training_curves.png"), "rb") as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"


def test_stdout_has_one_metric_line_per_checkpoint_and_metric(finished_job):
    base, stdout = finished_job
    with open(os.path.join(base, "output", "data", "metrics.json")) as stream:
        history = json.load(stream)
    lines = [line for line in stdout.splitlines() if line.startswith("#quality_metric")]
    assert len(lines) == 4 * len(history)
    parsed = {}
    for line in lines:
        match = LINE.match(line)
        assert match, line
        epoch, batch, split, name, score = match.groups()
        parsed[(int(batch), split, name)] = float(score)
    for record in history:
        for split, name in (("validation", "perplexity"), ("validation", "accuracy"), ("validation", "bleu"),
                            ("train", "perplexity")):
            assert parsed[(record["updates"], split, name)] == pytest.approx(record[f"{split}_{name}"], rel=1e-5)
    # The published regexes (for SageMaker metric definitions) capture the same numbers.
    for key, regex in METRIC_REGEXES.items():
        values = [float(m.group(1)) for m in re.finditer(regex, stdout)]
        split, name = key.split(":")
        assert values == pytest.approx([r[f"{split}_{name}"] for r in history], rel=1e-5)


def test_checkpoint_dir_holds_the_training_state_and_the_exported_best(finished_job):
    base, _ = finished_job
    checkpoints = os.path.join(base, "checkpoints")
    with open(os.path.join(checkpoints, "training_state", "state.json")) as stream:
        state = json.load(stream)
    assert state["num_updates"] == 40 and state["num_checkpoints"] == 2
    exported = mx.nd.load(os.path.join(base, "model", "params.best"))
    best = mx.nd.load(os.path.join(checkpoints, "params.best"))
    assert exported.keys() == best.keys()
    for name in best:
        np.testing.assert_array_equal(exported[name].asnumpy(), best[name].asnumpy())


def test_progress_log_lines(finished_job):
    _, stdout = finished_job
    progress = [line for line in stdout.splitlines() if "updates/s=" in line]
    assert len(progress) == 40 // QUICK["log_frequency_num_batches"]
    for field in ("epoch=", "updates=", "target_tokens/s=", "train_perplexity=", "lr=", "eta_epoch="):
        assert all(field in line for line in progress), field


# ----- devices and hyperparameter encodings -----

def test_two_cpu_devices_run_the_data_parallel_path(tmp_path):
    make_tree(tmp_path, dict(QUICK, devices="cpu:2", max_num_batches=10, checkpoint_frequency_num_batches=10,
                             bleu_sample_size=0))
    result = run_train_job(str(tmp_path))
    assert result.returncode == 0, result.stdout[-4000:]
    assert "devices [cpu(0), cpu(1)]" in result.stdout
    with open(os.path.join(tmp_path, "output", "data", "metrics.json")) as stream:
        history = json.load(stream)
    assert [r["updates"] for r in history] == [10]
    assert np.isfinite(history[0]["validation_perplexity"])
    Translator.load(os.path.join(tmp_path, "model")).translate_text(["w1 w2"])


def test_json_quoted_hyperparameters_are_understood(tmp_path):
    values = dict(QUICK, max_num_batches=4, checkpoint_frequency_num_batches=4, bleu_sample_size=0,
                  optimizer_type="sgd", rnn_cell_type="gru", bucketing_enabled=False, learning_rate=0.05,
                  rnn_decoder_state_init="avg")
    make_tree(tmp_path, values)
    write_hyperparameters(str(tmp_path), values, json_quoted=True)
    with open(os.path.join(tmp_path, "input", "config", "hyperparameters.json")) as stream:
        assert json.load(stream)["optimizer_type"] == '"sgd"'
    result = run_train_job(str(tmp_path))
    assert result.returncode == 0, result.stdout[-4000:]
    with open(os.path.join(tmp_path, "model", "config.json")) as stream:
        config = json.load(stream)
    assert config["model"]["rnn_cell_type"] == "gru"
    assert config["model"]["rnn_decoder_state_init"] == "avg"
    assert config["hyperparameters"]["optimizer_type"] == "sgd"
    assert config["hyperparameters"]["bucketing_enabled"] is False
    assert config["hyperparameters"]["learning_rate"] == 0.05


# ----- the failure funnel -----

@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A valid small tree; main() runs in-process on it (SIGTERM handler restored afterwards)."""
    make_tree(tmp_path, dict(QUICK, max_num_batches=2), num_train=40, num_validation=8)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    previous = signal.getsignal(signal.SIGTERM)
    yield tmp_path
    signal.signal(signal.SIGTERM, previous)


def run_main(base) -> tuple:
    """(exit code, first line of the failure file)."""
    code = train_job.main()
    failure = read_failure(str(base))
    assert (failure is None) == (code == 0)
    return code, failure.splitlines()[0] if failure else None


def data_path(base, *parts):
    return os.path.join(str(base), "input", "data", *parts)


def test_missing_channel(tree):
    shutil.rmtree(data_path(tree, "validation"))
    code, first = run_main(tree)
    assert code == 2
    assert "channel 'validation'" in first and data_path(tree, "validation") in first


def test_missing_vocab_file(tree):
    os.remove(data_path(tree, "vocab", "vocab.trg.json"))
    code, first = run_main(tree)
    assert code == 2 and "vocab.trg.json" in first and "channel 'vocab'" in first


def test_empty_rec_file(tree):
    open(data_path(tree, "train", "train.rec"), "wb").close()
    code, first = run_main(tree)
    assert code == 2
    assert "channel 'train'" in first and "empty" in first and "train.rec" in first


def test_rec_file_without_records_in_a_channel_with_others(tree):
    """An empty .rec next to a good one is fine; the good one's records are used."""
    open(data_path(tree, "train", "extra.rec"), "wb").close()
    code, _ = run_main(tree)
    assert code == 0


@pytest.mark.parametrize("side", ["source", "target"])
def test_token_id_beyond_the_vocabulary(tree, side):
    vocab = Vocabulary.load(data_path(tree, "vocab", f"vocab.{'src' if side == 'source' else 'trg'}.json"))
    bad = len(vocab) + 5
    with RecordWriter(data_path(tree, "train", "train.rec")) as writer:
        for record in range(10):
            ids = [4, 5, bad] if record == 7 else [4, 5]
            writer.write(ids if side == "source" else [4], ids if side == "target" else [4])
    code, first = run_main(tree)
    assert code == 2
    for fragment in ("train.rec", "record 7", f"{side} token id {bad}", str(len(vocab))):
        assert fragment in first, (fragment, first)


@pytest.mark.parametrize("symbol", ["<pad>", "<unk>", "<s>", "</s>"])
def test_vocabulary_without_a_reserved_symbol(tree, symbol):
    path = data_path(tree, "vocab", "vocab.src.json")
    with open(path, encoding="utf-8") as stream:
        mapping = json.load(stream)
    tokens = [t for t, _ in sorted(mapping.items(), key=lambda item: item[1]) if t != symbol]
    with open(path, "w", encoding="utf-8") as stream:
        json.dump({t: i for i, t in enumerate(tokens)}, stream)
    code, first = run_main(tree)
    assert code == 2
    assert "vocab.src.json" in first and symbol in first, first


def test_source_vocabulary_that_does_not_match_the_records(tree):
    """A vocabulary from other data (smaller than the ids in the records) is named as the likely cause."""
    path = data_path(tree, "vocab", "vocab.src.json")
    Vocabulary({t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", "w0", "w1"])}).save(path)
    code, first = run_main(tree)
    assert code == 2
    assert "channel 'train'" in first and "train.rec" in first and re.search(r"record \d+", first)
    assert "source token id" in first and "vocab.src.json" in first


def test_unknown_hyperparameter_suggests_the_closest_name(tree):
    write_hyperparameters(str(tree), dict(QUICK, batch_szie=32))
    code, first = run_main(tree)
    assert code == 2
    assert "batch_szie" in first and "did you mean 'batch_size'" in first


def test_invalid_hyperparameter_value_names_the_allowed_values(tree):
    write_hyperparameters(str(tree), dict(QUICK, rnn_attention_type="cosine"))
    assert run_main(tree)[0] == 2
    text = read_failure(str(tree))
    assert "rnn_attention_type" in text and "cosine" in text and "mlp" in text


def test_corrupt_rec_file_names_the_byte_offset(tree):
    path = data_path(tree, "train", "train.rec")
    with open(path, "rb") as stream:
        data = bytearray(stream.read())
    magic = struct.pack("<I", 0xCED7230A)
    offsets = [i for i in range(0, len(data) - 3, 4) if data[i:i + 4] == magic]
    assert len(offsets) == 40
    data[offsets[5]:offsets[5] + 4] = b"\xde\xad\xbe\xef"
    with open(path, "wb") as stream:
        stream.write(data)
    code, first = run_main(tree)
    assert code == 2
    assert "train.rec" in first and f"byte offset {offsets[5]}" in first and "record 5" in first, first


def test_internal_error_is_reported_as_such(tree, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("simulated fault")
    monkeypatch.setattr(train_job, "Seq2SeqModel", broken)
    code, first = run_main(tree)
    assert code == 1
    assert first.startswith("InternalError") and "ZeroDivisionError" in first and "simulated fault" in first


def test_a_rerun_reports_only_its_own_outcome(tree):
    """A failed run's reason must not survive into a later run in the same tree (local reruns, resumes)."""
    hyperparameters = os.path.join(str(tree), "input", "config", "hyperparameters.json")
    with open(hyperparameters) as stream:
        good = stream.read()
    write_hyperparameters(str(tree), dict(QUICK, batch_szie=3))
    assert run_main(tree)[0] == 2
    with open(hyperparameters, "w") as stream:
        stream.write(good)
    assert run_main(tree) == (0, None)
    assert os.path.exists(os.path.join(str(tree), "output", "success"))
    shutil.rmtree(data_path(tree, "train"))
    assert run_main(tree)[0] == 2
    assert not os.path.exists(os.path.join(str(tree), "output", "success"))


def history_of(base):
    with open(os.path.join(str(base), "output", "data", "metrics.json")) as stream:
        return json.load(stream)


def test_max_num_epochs_stops_at_the_epoch_end(tree, caplog):
    caplog.set_level("INFO")
    write_hyperparameters(str(tree), dict(QUICK, max_num_batches=-1, max_num_epochs=2, batch_size=8,
                                          checkpoint_frequency_num_batches=1000, bleu_sample_size=0))
    assert run_main(tree) == (0, None)
    history = history_of(tree)
    assert len(history) == 1
    assert history[0]["updates"] == 2 * batches_per_epoch(caplog)


def test_early_stopping_after_checkpoint_threshold_without_improvement(tree):
    """A learning rate too small to change float32 weights: no checkpoint after the first can improve."""
    write_hyperparameters(str(tree), dict(QUICK, max_num_batches=200, checkpoint_frequency_num_batches=3,
                                          checkpoint_threshold=2, learning_rate=1e-30, bleu_sample_size=0,
                                          min_num_epochs=0))
    assert run_main(tree) == (0, None)
    history = history_of(tree)
    assert [r["updates"] for r in history] == [3, 6, 9]
    assert [r["improved"] for r in history] == [True, False, False]


@pytest.mark.parametrize("input_feeding", [False, True])
def test_scheduled_sampling_trains_and_changes_the_updates(tree, input_feeding, monkeypatch):
    """teacher_forcing_ratio < 1 feeds the model's own predictions: same seed, different training."""
    perplexities = []
    for ratio in (1.0, 0.0):
        base = tree / f"ratio-{ratio}"
        make_tree(base, dict(QUICK, max_num_batches=6, checkpoint_frequency_num_batches=6, bleu_sample_size=0,
                             teacher_forcing_ratio=ratio, input_feeding=input_feeding), num_train=40,
                  num_validation=8)
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
        assert run_main(base) == (0, None)
        perplexities.append(history_of(base)[-1]["validation_perplexity"])
    assert np.isfinite(perplexities).all()
    assert abs(perplexities[0] - perplexities[1]) > 1e-6 * perplexities[0]


def batches_per_epoch(caplog) -> int:
    found = [re.search(r"(\d+) training batches per epoch", r.getMessage()) for r in caplog.records]
    return int([m for m in found if m][-1].group(1))


def test_min_num_epochs_delays_early_stopping(tree, caplog):
    """As above, but early stopping may only fire once two epochs are complete."""
    caplog.set_level("INFO")
    write_hyperparameters(str(tree), dict(QUICK, max_num_batches=200, checkpoint_frequency_num_batches=3,
                                          checkpoint_threshold=1, learning_rate=1e-30, bleu_sample_size=0,
                                          min_num_epochs=2, batch_size=8))
    assert run_main(tree) == (0, None)
    epoch_batches = batches_per_epoch(caplog)
    assert epoch_batches >= 4
    history = history_of(tree)
    assert history[-1]["updates"] == 2 * epoch_batches
    assert [r["improved"] for r in history][:2] == [True, False]


def test_container_train_executable_exits_2_on_user_error(tmp_path):
    make_tree(tmp_path, dict(QUICK, max_num_batches=2), num_train=20, num_validation=4)
    shutil.rmtree(data_path(tmp_path, "train"))
    env = job_environment(str(tmp_path))
    env["PATH"] = os.path.join(REPO_ROOT, ".venv", "bin") + os.pathsep + env["PATH"]
    result = subprocess.run([os.path.join(REPO_ROOT, "container", "train")], env=env, cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert result.returncode == 2, result.stdout[-3000:]
    assert "channel 'train'" in read_failure(str(tmp_path)).splitlines()[0]
    assert "Traceback" in result.stdout          # the traceback goes to the log, not to the failure file
    assert "Traceback" not in read_failure(str(tmp_path))
