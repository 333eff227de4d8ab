"""Fine-tuning from SageMaker's `model` channel, checkpointconfig.json and pretrained embeddings, through the real
job."""

import json
import logging
import os
import shutil
import signal
import tarfile
from dataclasses import replace

import mxnet as mx
import numpy as np
import pytest

import seq2seq.train_job as train_job
from seq2seq.data.batch_iterator import IteratorPosition
from seq2seq.data.vocab import Vocabulary
from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.model_dir import load_model
from seq2seq.training.loss import MaskedCrossEntropy
from tests.sagemaker_tree import TINY_MODEL, copy_task_pairs, read_failure, write_tree

pytestmark = pytest.mark.slow

BASE = dict(TINY_MODEL, bleu_sample_size=0, seed=5, checkpoint_frequency_num_batches=20, max_num_batches=60,
            checkpoint_threshold=50)


@pytest.fixture
def job(in_process):
    """Run train_job.main in this process on a tree; `stop_at` stops it (as SIGTERM does) after that update."""
    return in_process


def make_tree(base, hyperparameters, seed=1, reverse=False, num_train=200):
    return write_tree(str(base), hyperparameters, copy_task_pairs(num_train, seed=seed, reverse=reverse),
                      copy_task_pairs(24, seed=seed + 100, reverse=reverse))


def pack(model_dir, archive, arcname_prefix=""):
    with tarfile.open(archive, "w:gz") as tar:
        for name in sorted(os.listdir(model_dir)):
            tar.add(os.path.join(model_dir, name), arcname=arcname_prefix + name)


def add_model_channel(base, model_dir, as_archive=True):
    channel = os.path.join(str(base), "input", "data", "model")
    os.makedirs(channel, exist_ok=True)
    if as_archive:
        pack(model_dir, os.path.join(channel, "model.tar.gz"))
    else:
        for name in os.listdir(model_dir):
            shutil.copy(os.path.join(model_dir, name), channel)
    return channel


def state_of(base):
    with open(os.path.join(str(base), "checkpoints", "training_state", "state.json")) as stream:
        return json.load(stream)


def parameters(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


@pytest.fixture(scope="module")
def stored_model(tmp_path_factory):
    """A trained tiny copy-task model: the previous job's /opt/ml/model."""
    base = tmp_path_factory.mktemp("base_job")
    make_tree(base, BASE)
    previous = signal.getsignal(signal.SIGTERM)
    old = os.environ.get("SAGEMAKER_BASE_DIR")
    os.environ["SAGEMAKER_BASE_DIR"] = str(base)
    try:
        assert train_job.main() == 0, read_failure(str(base))
    finally:
        signal.signal(signal.SIGTERM, previous)
        if old is None:
            os.environ.pop("SAGEMAKER_BASE_DIR")
        else:
            os.environ["SAGEMAKER_BASE_DIR"] = old
    return os.path.join(str(base), "model")


def first_batch_nll(base, hyperparameters, stored_model_dir):
    """The summed NLL of the stored model on the job's first training batch (the batch of the job's first update),
    the batch's ids (of the job's vocabularies) translated token by token into the stored model's ids."""
    from seq2seq.opt_ml import SageMakerPaths
    model, stored_source, stored_target, _ = load_model(stored_model_dir)
    paths = SageMakerPaths(str(base))
    source_vocab, target_vocab = (Vocabulary.load(os.path.join(str(base), "input", "data", "vocab", name))
                                  for name in ("vocab.src.json", "vocab.trg.json"))
    hp = parse_hyperparameters({k: str(v) for k, v in hyperparameters.items()})
    train = train_job._read_channel(paths, "train", {}, hp, source_vocab, target_vocab)
    validation = train_job._read_channel(paths, "validation", {}, hp, source_vocab, target_vocab)
    train_iter, _ = train_job.build_iterators(hp, train, validation, 0, 1, 1)
    batch = next(iter(train_iter.epoch(IteratorPosition(0, 0))))
    to_stored = [np.array(stored.encode(new.id_to_token)) for new, stored in ((source_vocab, stored_source),
                                                                               (target_vocab, stored_target))]
    assert set(source_vocab.id_to_token) == set(stored_source.id_to_token)  # a permutation: no fresh row used
    source_ids, target_ids = to_stored

    def mapped(table, ids):
        return table[ids.astype(np.int64)].astype(ids.dtype)
    batch = replace(batch, source=mapped(source_ids, batch.source),
                    target_input=mapped(target_ids, batch.target_input), labels=mapped(target_ids, batch.labels))
    loaded = batch.load(mx.cpu())
    _, nll, _ = MaskedCrossEntropy(0.0, with_accuracy=False)(loaded.valid_logits(model), loaded.valid_labels)
    return float(nll.asscalar())


@pytest.mark.parametrize("as_archive", [True, False], ids=["model.tar.gz", "extracted directory"])
def test_first_update_loss_is_the_stored_models_loss(tmp_path, job, stored_model, as_archive):
    base = tmp_path / "finetune"
    hyperparameters = dict(BASE, learning_rate=0.001)   # optimiser settings may differ from the stored model's
    make_tree(base, hyperparameters, seed=3)
    add_model_channel(base, stored_model, as_archive)
    assert job(base, stop_at=1) == 0, read_failure(str(base))
    state = state_of(base)
    assert state["num_updates"] == 1
    expected = first_batch_nll(base, hyperparameters, stored_model)
    assert state["train_loss_sum"] == pytest.approx(expected, rel=1e-5)
    # A job from scratch starts from a worse loss on the same batch (the stored model is 60 updates old).
    scratch = tmp_path / "scratch"
    make_tree(scratch, hyperparameters, seed=3)
    assert job(scratch, stop_at=1) == 0
    assert state_of(scratch)["train_loss_sum"] > 1.1 * expected


def test_architecture_mismatch_names_every_difference(tmp_path, job, stored_model):
    base = tmp_path / "finetune"
    make_tree(base, dict(BASE, rnn_num_hidden=48, rnn_cell_type="gru", embed_dropout_source=0.3))
    add_model_channel(base, stored_model)
    assert job(base) == 2
    failure = read_failure(str(base))
    assert failure.startswith("UserError: channel 'model': the model in ")
    assert "2 difference(s)" in failure
    assert "rnn_num_hidden = 48 here, 32 in the stored model" in failure
    assert "rnn_cell_type = gru here, lstm in the stored model" in failure
    assert "embed_dropout_source" not in failure     # regularisation may differ
    assert not os.path.exists(os.path.join(str(base), "checkpoints", "training_state"))


def test_a_stopped_finetune_resumes_from_its_own_checkpoint(tmp_path, job, stored_model):
    hyperparameters = dict(BASE, max_num_batches=30)
    reference = tmp_path / "reference"
    make_tree(reference, hyperparameters, seed=3)
    add_model_channel(reference, stored_model)
    assert job(reference) == 0
    base = tmp_path / "resumed"
    make_tree(base, hyperparameters, seed=3)
    channel = add_model_channel(base, stored_model)
    assert job(base, stop_at=12) == 0
    assert state_of(base)["num_updates"] == 12
    # The channel is not read again: even a broken archive there does not matter now.
    with open(os.path.join(channel, "model.tar.gz"), "wb") as stream:
        stream.write(b"not an archive")
    assert job(base) == 0, read_failure(str(base))
    ours, theirs = parameters(os.path.join(str(base), "model", "params.best")), \
        parameters(os.path.join(str(reference), "model", "params.best"))
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("devices", ["cpu", "cpu:2"])
def test_fixed_param_strategy_keeps_the_encoder(tmp_path, job, stored_model, devices):
    base = tmp_path / "finetune"
    make_tree(base, dict(BASE, max_num_batches=20, fixed_param_strategy="encoder", devices=devices), seed=3)
    add_model_channel(base, stored_model)
    assert job(base) == 0, read_failure(str(base))
    before = parameters(os.path.join(stored_model, "params.best"))
    after = parameters(os.path.join(str(base), "model", "params.best"))
    source_vocab = Vocabulary.load(os.path.join(str(base), "model", "vocab.src.json"))
    stored_source = Vocabulary.load(os.path.join(stored_model, "vocab.src.json"))
    for name in before:
        if name == "encoder.embedding.weight":  # the rows follow the tokens (this data orders them differently)
            for token, token_id in source_vocab.token_to_id().items():
                np.testing.assert_array_equal(after[name][token_id], before[name][stored_source.get(token)], token)
        elif name.startswith("encoder."):
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert not np.allclose(after["decoder.attention_hidden.weight"], before["decoder.attention_hidden.weight"])


def test_new_target_tokens_get_fresh_rows_and_are_counted(tmp_path, job, stored_model, caplog):
    base = tmp_path / "finetune"
    pairs = [(s, t + ["extra1"] if i % 3 == 0 else t) for i, (s, t) in enumerate(copy_task_pairs(200, seed=3))]
    write_tree(str(base), dict(BASE, max_num_batches=20), pairs, pairs[:24])
    add_model_channel(base, stored_model)
    caplog.set_level(logging.INFO, logger="seq2seq.model_channel")
    assert job(base) == 0, read_failure(str(base))
    target = Vocabulary.load(os.path.join(str(base), "model", "vocab.trg.json"))
    stored_target = Vocabulary.load(os.path.join(stored_model, "vocab.trg.json"))
    assert "extra1" in target.token_to_id() and "extra1" not in stored_target.token_to_id()
    assert len(target) == len(stored_target) + 1
    messages = [r.getMessage() for r in caplog.records if r.name == "seq2seq.model_channel"]
    size = len(stored_target)
    assert any(f"source vocabulary: {size} of {size} tokens take the stored model's rows, 0 new tokens get fresh "
               f"rows; 0 of the stored model's {size} tokens are not used" in m for m in messages), messages
    assert any(f"target vocabulary: {size} of {size + 1} tokens take the stored model's rows, 1 new tokens get "
               f"fresh rows; 0 of the stored model's {size} tokens are not used" in m for m in messages), messages


# ----- checkpointconfig.json -----

def test_checkpointconfig_local_path_moves_the_checkpoints_and_resume_works(tmp_path, job):
    base = tmp_path / "opt_ml"
    make_tree(base, dict(BASE, max_num_batches=25))
    elsewhere = tmp_path / "spot-checkpoints"
    with open(os.path.join(str(base), "input", "config", "checkpointconfig.json"), "w") as stream:
        json.dump({"LocalPath": str(elsewhere), "S3Path": "s3://bucket/checkpoints"}, stream)
    assert job(base, stop_at=9) == 0
    assert not os.path.exists(os.path.join(str(base), "checkpoints"))
    with open(os.path.join(str(elsewhere), "training_state", "state.json")) as stream:
        assert json.load(stream)["num_updates"] == 9
    assert job(base) == 0, read_failure(str(base))
    with open(os.path.join(str(elsewhere), "training_state", "state.json")) as stream:
        assert json.load(stream)["num_updates"] == 25
    assert not os.path.exists(os.path.join(str(base), "checkpoints"))
    assert os.path.exists(os.path.join(str(base), "model", "params.best"))


# ----- pretrained embeddings -----

def write_vectors(path, vocab, dimension, seed, header=False, skip=()):
    rng = np.random.RandomState(seed)
    vectors = {}
    with open(path, "w", encoding="utf-8") as stream:
        tokens = [t for t in vocab.id_to_token[4:] if t not in skip]
        if header:
            stream.write(f"{len(tokens)} {dimension}\n")
        for token in tokens:
            numbers = [f"{x:.6f}" for x in rng.uniform(-1, 1, dimension)]
            vectors[token] = np.array(numbers, dtype=np.float32)
            stream.write(token + " " + " ".join(numbers) + "\n")
    return vectors


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "trained"])
def test_pretrained_embeddings_are_loaded_and_frozen_or_trained(tmp_path, job, frozen):
    base = tmp_path / "opt_ml"
    source_vocab, target_vocab = make_tree(base, dict(BASE, max_num_batches=20, freeze_embeddings_source=frozen,
                                                      freeze_embeddings_target=frozen))
    channel = os.path.join(str(base), "input", "data", "embeddings")
    os.makedirs(channel)
    source_vectors = write_vectors(os.path.join(channel, "embed.src.txt"), source_vocab, 16, 1, header=True,
                                   skip=("w3",))
    target_vectors = write_vectors(os.path.join(channel, "embed.trg.txt"), target_vocab, 16, 2)
    assert job(base) == 0, read_failure(str(base))
    after = parameters(os.path.join(str(base), "model", "params.best"))
    for name, vocab, vectors in (("encoder.embedding.weight", source_vocab, source_vectors),
                                 ("decoder.embedding.weight", target_vocab, target_vectors)):
        for token, vector in vectors.items():
            row = after[name][vocab.token_to_id()[token]]
            if frozen:
                np.testing.assert_array_equal(row, vector, err_msg=token)
            else:
                assert not np.allclose(row, vector, atol=1e-4), token
    w3 = after["encoder.embedding.weight"][source_vocab.token_to_id()["w3"]]
    assert not any(np.allclose(w3, v) for v in source_vectors.values())  # not in the file: initialised as usual


@pytest.mark.parametrize("content, expected", [
    ("w0 0.1 0.2\n", "embed.src.txt line 1: 2 numbers after the token, but num_embed_source is 16"),
    ("w0 " + " ".join(["0.5"] * 16) + "\nw1 " + " ".join(["0.5"] * 15) + " x\n",
     "embed.src.txt line 2: 'x' is not a number"),
    ("10 300\n", "embed.src.txt line 1: the word2vec header gives dimension 300, but num_embed_source is 16"),
])
def test_bad_embedding_file_fails_with_file_and_line(tmp_path, job, content, expected):
    base = tmp_path / "opt_ml"
    make_tree(base, dict(BASE, max_num_batches=5))
    channel = os.path.join(str(base), "input", "data", "embeddings")
    os.makedirs(channel)
    with open(os.path.join(channel, "embed.src.txt"), "w") as stream:
        stream.write(content)
    assert job(base) == 2
    failure = read_failure(str(base))
    assert failure.startswith("UserError: embedding file ") and expected in failure
    assert len(failure.strip().splitlines()) == 1


# ----- fine-tuning learns: a second task with the same vocabulary -----

LEARNING = dict(BASE, bleu_sample_size=-1, beam_size=1, checkpoint_frequency_num_batches=25, checkpoint_threshold=100)


def shifted(pairs):
    """The second task: copy each word as the next word of the vocabulary (w3 -> w4, w11 -> w0)."""
    return [(source, [f"w{(int(w[1:]) + 1) % 12}" for w in target]) for source, target in pairs]


def bleu_history(base):
    with open(os.path.join(str(base), "output", "data", "metrics.json")) as stream:
        return [(record["updates"], record["validation_bleu"]) for record in json.load(stream)]


def test_finetuning_reaches_the_bleu_in_fewer_updates_than_training_from_scratch(tmp_path, job):
    first = tmp_path / "copy"
    write_tree(str(first), dict(LEARNING, max_num_batches=300), copy_task_pairs(600, seed=1),
               copy_task_pairs(50, seed=2))
    assert job(first) == 0, read_failure(str(first))
    histories = {}
    for name in ("finetuned", "scratch"):
        base = tmp_path / name
        write_tree(str(base), dict(LEARNING, max_num_batches=150), shifted(copy_task_pairs(600, seed=3)),
                   shifted(copy_task_pairs(50, seed=4)))
        if name == "finetuned":
            add_model_channel(base, os.path.join(str(first), "model"))
        assert job(base) == 0, read_failure(str(base))
        histories[name] = bleu_history(base)
    target = 60.0
    finetuned, scratch = histories["finetuned"], histories["scratch"]
    assert finetuned[0][1] < 20, finetuned       # the copy model does not know the new task: it has to learn it
    reached = [updates for updates, bleu in finetuned if bleu >= target]
    assert reached and reached[0] <= 125, histories
    assert all(bleu < target for _, bleu in scratch), histories   # not within 150 updates from scratch


@pytest.mark.parametrize("channel", ["model", "embeddings"])
def test_model_and_embeddings_channels_must_be_file_mode(tmp_path, job, channel):
    base = tmp_path / "opt_ml"
    make_tree(base, dict(BASE, max_num_batches=5))
    channels = {name: {"TrainingInputMode": "File"} for name in ("train", "validation", "vocab")}
    channels[channel] = {"TrainingInputMode": "Pipe"}
    with open(os.path.join(str(base), "input", "config", "inputdataconfig.json"), "w") as stream:
        json.dump(channels, stream)
    assert job(base) == 2
    assert read_failure(str(base)).startswith(f"UserError: channel '{channel}' must use File mode")


# ----- several hosts -----

def test_two_hosts_finetune_with_their_checkpointconfig_and_end_identical(tmp_path, stored_model):
    from tests.integration.test_multihost import HOSTS, make_hosts, read, run_hosts
    from seq2seq.training import training_state as ts
    bases = make_hosts(tmp_path, max_num_batches=12, checkpoint_frequency_num_batches=12, bleu_sample_size=0)
    checkpoint_dirs = {}
    for host in HOSTS:
        add_model_channel(bases[host], stored_model)
        checkpoint_dirs[host] = str(tmp_path / f"{host}-spot-checkpoints")
        with open(os.path.join(bases[host], "input", "config", "checkpointconfig.json"), "w") as stream:
            json.dump({"LocalPath": checkpoint_dirs[host], "S3Path": "s3://bucket/job/checkpoints"}, stream)
    logs = run_hosts(tmp_path, bases)
    saved = {}
    for host in HOSTS:
        assert "parameters loaded from the model channel" in read(logs[host])
        assert not os.path.exists(os.path.join(bases[host], "checkpoints", "training_state"))
        with open(os.path.join(ts.state_dir(checkpoint_dirs[host]), "state.json")) as stream:
            assert json.load(stream)["num_updates"] == 12
        saved[host] = parameters(ts.params_path(checkpoint_dirs[host]))
    for name in saved["algo-1"]:
        np.testing.assert_array_equal(saved["algo-1"][name], saved["algo-2"][name], err_msg=name)


def test_a_sigtermed_finetune_job_resumes_from_its_checkpoint_not_the_channel(tmp_path, stored_model):
    from tests.sagemaker_tree import run_train_job, start_train_job, wait_for_file
    base = tmp_path / "finetune"
    make_tree(base, dict(BASE, max_num_batches=60), seed=3)
    add_model_channel(base, stored_model)
    state_file = os.path.join(str(base), "checkpoints", "training_state", "state.json")
    process = start_train_job(str(base))
    try:
        assert wait_for_file(state_file, timeout=240, process=process), "no checkpoint appeared"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stopped_at = state_of(base)["num_updates"]
    assert 20 <= stopped_at < 60
    result = run_train_job(str(base))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "the model channel is not loaded again" in result.stdout
    assert "parameters loaded from the model channel" not in result.stdout
    assert f"resumed from {os.path.join(str(base), 'checkpoints')} at update {stopped_at}" in result.stdout
    assert state_of(base)["num_updates"] == 60


def test_other_subword_models_than_the_stored_models_are_warned_about(tmp_path, caplog):
    from seq2seq.finetune import _warn_on_other_subwords
    from tests.unit.test_subword import corpus, prepare
    for name, kind in (("first", "unigram"), ("second", "bpe")):
        (tmp_path / name).mkdir()
        assert prepare(corpus(tmp_path / name), tmp_path / f"{name}-out", "--subword", kind,
                       "--subword-vocab-size", "100") == 0
    from seq2seq.data.subword import find_subword_models
    first, second = find_subword_models(tmp_path / "first-out"), find_subword_models(tmp_path / "second-out")
    caplog.set_level(logging.WARNING, logger="seq2seq.finetune")
    _warn_on_other_subwords(str(tmp_path / "first-out"), first)
    assert not caplog.records
    _warn_on_other_subwords(str(tmp_path / "first-out"), second)
    _warn_on_other_subwords(str(tmp_path / "first-out"), None)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "--subword-models-from" in messages[0] and "has others" in messages[0]
    assert "has none" in messages[1]
