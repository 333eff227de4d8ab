"""seq2seq.model_dir: a model directory written, read back and loaded; stale subword files; missing files."""

import json
import os

import mxnet as mx
import numpy as np
import pytest

from seq2seq import __version__, constants, model_dir
from seq2seq.data.subword import SubwordModels, SubwordTrainingConfig, train_subword_model
from seq2seq.data.vocab import build_vocabulary
from seq2seq.errors import UserError
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel

WORDS = "the a big small dog cat runs sleeps".split()


def tiny_model(source_vocab, target_vocab):
    config = ModelConfig(source_vocab_size=len(source_vocab), target_vocab_size=len(target_vocab),
                         num_embed_source=8, num_embed_target=8, rnn_num_hidden=16, rnn_attention_num_hidden=16,
                         max_seq_len_source=10, max_seq_len_target=10)
    mx.random.seed(5)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(magnitude=2.34), mx.cpu())
    return model


@pytest.fixture
def parts():
    vocab = build_vocabulary([WORDS])
    return tiny_model(vocab, vocab), vocab, vocab


def params_of(model):
    return {name: p.data().asnumpy() for name, p in model.collect_params().items()}


def contents(directory):
    return {name: (directory / name).read_bytes() for name in os.listdir(directory)}


def subword_models(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"{a} {b} {c}\n" for a in WORDS for b in WORDS for c in WORDS[:3]), encoding="utf-8")
    model = train_subword_model([str(corpus)], SubwordTrainingConfig(vocab_size=30, num_threads=1),
                                tmp_path / "sp.model")
    return SubwordModels(model, model)


def test_the_file_list_names_every_file_once():
    assert len(set(model_dir.MODEL_FILES)) == len(model_dir.MODEL_FILES) == 9
    assert set(model_dir.MODEL_FILES) == {"params.best", "config.json", "vocab.src.json", "vocab.trg.json",
                                         "version", "metrics.json", "subword.src.model", "subword.trg.model",
                                         "shortlist.npz"}
    assert model_dir.REQUIRED_FILES[-1] == constants.MODEL_CONFIG_FILE    # the file written last


def test_write_then_read_config_and_load_gives_the_same_model(tmp_path, parts):
    model, source_vocab, target_vocab = parts
    directory = str(tmp_path / "model")
    model_dir.write_model_dir(directory, model, source_vocab, target_vocab, {"beam_size": 3})
    model_dir.write_model_metrics(directory, {"num_updates": 7, "best_checkpoint": None})
    assert sorted(os.listdir(directory)) == sorted(model_dir.REQUIRED_FILES + (constants.MODEL_METRICS_FILE,))
    with open(os.path.join(directory, constants.MODEL_VERSION_FILE), encoding="utf-8") as stream:
        assert stream.read() == __version__
    with open(os.path.join(directory, constants.MODEL_METRICS_FILE), encoding="utf-8") as stream:
        assert json.load(stream) == {"num_updates": 7, "best_checkpoint": None}

    config, whole = model_dir.read_model_config(directory)
    assert config == model.config
    assert whole["beam_size"] == 3 and whole["version"] == __version__ and "text" not in whole

    loaded, loaded_source, loaded_target, loaded_config = model_dir.load_model(directory)
    assert loaded_source == source_vocab and loaded_target == target_vocab and loaded_config == whole
    expected = params_of(model)
    for name, value in params_of(loaded).items():
        np.testing.assert_array_equal(value, expected[name.replace(loaded.prefix, model.prefix, 1)])


def test_subword_files_are_written_with_the_model_and_removed_when_a_word_model_replaces_it(tmp_path, parts):
    model, source_vocab, target_vocab = parts
    directory = str(tmp_path / "model")
    subword = subword_models(tmp_path)
    model_dir.write_model_dir(directory, model, source_vocab, target_vocab, subword=subword)
    for name in constants.SUBWORD_FILES:
        with open(os.path.join(directory, name), "rb") as stream:
            assert stream.read() == subword.source.model_proto
    _, config = model_dir.read_model_config(directory)
    assert config["text"] == {"kind": "raw text, SentencePiece subwords", "joint": True,
                              "source_model": constants.SUBWORD_SOURCE_FILE,
                              "target_model": constants.SUBWORD_TARGET_FILE}

    model_dir.write_model_dir(directory, model, source_vocab, target_vocab)      # a word-level model now
    assert sorted(os.listdir(directory)) == sorted(model_dir.REQUIRED_FILES)
    assert "text" not in model_dir.read_model_config(directory)[1]


def test_a_lone_stale_subword_file_is_removed_too(tmp_path, parts):
    model, source_vocab, target_vocab = parts
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / constants.SUBWORD_TARGET_FILE).write_bytes(b"from an earlier model")
    model_dir.write_model_dir(str(directory), model, source_vocab, target_vocab)
    assert not (directory / constants.SUBWORD_TARGET_FILE).exists()
    assert not [name for name in os.listdir(directory) if name.startswith(".") or name.endswith(".tmp")]


def test_missing_or_broken_config_and_missing_parameters_are_user_errors(tmp_path, parts):
    directory = str(tmp_path)
    path = os.path.join(directory, constants.MODEL_CONFIG_FILE)
    with pytest.raises(UserError) as raised:
        model_dir.read_model_config(directory)
    assert str(raised.value) == f"{path}: no model config; is {directory} a trained model directory?"
    with pytest.raises(UserError, match="no model config"):
        model_dir.load_model(directory)

    with open(path, "w", encoding="utf-8") as stream:
        stream.write('{"version": "0.1.0"}')
    with pytest.raises(UserError) as raised:
        model_dir.read_model_config(directory)
    assert str(raised.value) == f"{path}: unreadable model config ('model')"

    model, source_vocab, target_vocab = parts
    model_dir.write_model_dir(directory, model, source_vocab, target_vocab)
    params = os.path.join(directory, constants.MODEL_PARAMS_FILE)
    os.remove(params)
    with pytest.raises(UserError) as raised:
        model_dir.load_model(directory)
    assert str(raised.value) == f"{params}: model parameters are missing"


def test_a_failing_parameter_write_keeps_the_previous_model(tmp_path, parts, monkeypatch):
    model, source_vocab, target_vocab = parts
    directory = tmp_path / "model"
    model_dir.write_model_dir(str(directory), model, source_vocab, target_vocab, {"beam_size": 3})
    before = contents(directory)

    def no_space(temp_path):
        raise OSError(28, "No space left on device", temp_path)
    monkeypatch.setattr(model, "save_parameters", no_space)
    with pytest.raises(OSError):
        model_dir.write_model_dir(str(directory), model, source_vocab, target_vocab, {"beam_size": 5})
    assert contents(directory) == before
