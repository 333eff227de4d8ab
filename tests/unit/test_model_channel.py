"""The model channel: safe extraction of untrusted archives, the architecture gate, vocabulary rows mapped by token."""

import gzip
import io
import os
import tarfile

import mxnet as mx
import numpy as np
import pytest

from seq2seq.data.vocab import Vocabulary
from seq2seq.errors import UserError
from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel
from seq2seq.model_channel import (architecture_differences, check_architecture, load_into, map_vocabulary,
                                   open_stored_model, safe_extract)
from tests.untrained_model import save_untrained_model

SIZES = dict(num_embed_source=16, num_embed_target=16, rnn_num_hidden=32, rnn_attention_num_hidden=32,
             max_seq_len_source=50, max_seq_len_target=50)


def vocab(*tokens):
    return Vocabulary({t: i for i, t in enumerate(("<pad>", "<unk>", "<s>", "</s>") + tokens)})


def add_file(tar, name, data=b"x", **attributes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attributes.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def add_special(tar, name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tar.addfile(info)


def archive_with(path, build):
    with tarfile.open(path, "w:gz") as tar:
        build(tar)
    return str(path)


def everything_under(directory):
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, dirs, files in os.walk(directory) for name in dirs + files)


# ----- safe extraction -----

@pytest.mark.parametrize("build, member, reason", [
    (lambda t: (add_file(t, "config.json"), add_file(t, "../evil.txt")), "../evil.txt", "contains '..'"),
    (lambda t: add_file(t, "sub/../../evil.txt"), "sub/../../evil.txt", "contains '..'"),
    (lambda t: add_file(t, "/tmp/evil.txt"), "/tmp/evil.txt", "is an absolute path"),
    (lambda t: add_special(t, "link", tarfile.SYMTYPE, "../../outside"), "link", "is a link pointing outside"),
    (lambda t: add_special(t, "abs-link", tarfile.SYMTYPE, "/etc/passwd"), "abs-link", "is a link pointing outside"),
    (lambda t: add_special(t, "hard", tarfile.LNKTYPE, "../x"), "hard", "is a link pointing outside"),
    (lambda t: add_special(t, "dev", tarfile.CHRTYPE), "dev", "is a device, FIFO or other special file"),
    (lambda t: add_special(t, "fifo", tarfile.FIFOTYPE), "fifo", "is a device, FIFO or other special file"),
])
def test_unsafe_archives_are_refused_and_nothing_is_written(tmp_path, build, member, reason):
    archive = archive_with(tmp_path / "model.tar.gz", build)
    target = tmp_path / "work" / "target"
    target.mkdir(parents=True)
    before_outside = everything_under(tmp_path)
    with pytest.raises(UserError) as info:
        safe_extract(archive, str(target))
    message = str(info.value)
    assert f"member {member!r}" in message and reason in message and archive in message
    assert "\n" not in message
    assert everything_under(str(target)) == []
    assert everything_under(tmp_path) == before_outside


def test_inward_links_and_folders_extract(tmp_path):
    def build(tar):
        add_file(tar, "model/config.json", b"{}")
        add_special(tar, "model/alias.json", tarfile.SYMTYPE, "config.json")
    archive = archive_with(tmp_path / "model.tar.gz", build)
    target = tmp_path / "out"
    target.mkdir()
    assert safe_extract(archive, str(target)) == ["model/config.json", "model/alias.json"]
    assert (target / "model" / "alias.json").read_bytes() == b"{}"


@pytest.mark.parametrize("content, expected", [
    (b"plain text, not gzip", "not a gzip-compressed tar archive"),
    (gzip.compress(b"gzip but not a tar" * 10), "not a gzip-compressed tar archive"),
])
def test_not_an_archive_is_one_line(tmp_path, content, expected):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        safe_extract(str(path), str(tmp_path))
    assert expected in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_archive_names_the_member(tmp_path):
    def build(tar):
        add_file(tar, "config.json", b"{}")
        add_file(tar, "params.best", os.urandom(200000))
    archive = archive_with(tmp_path / "full.tar.gz", build)
    data = open(archive, "rb").read()
    truncated = tmp_path / "model.tar.gz"
    truncated.write_bytes(data[:len(data) // 2])
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(UserError) as info:
        safe_extract(str(truncated), str(target))
    message = str(info.value)
    assert "'params.best'" in message and ("truncated" in message or "corrupt" in message), message
    assert everything_under(str(target)) == []


def test_archive_without_params_names_the_missing_member(tmp_path):
    model_dir = tmp_path / "model"
    save_untrained_model(str(model_dir), vocab("a"), vocab("b"))
    os.remove(model_dir / "params.best")
    channel = tmp_path / "channel"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        for name in os.listdir(model_dir):
            tar.add(model_dir / name, arcname=name)
    with pytest.raises(UserError) as info:
        with open_stored_model(str(channel)):
            pass
    assert "has no member 'params.best'" in str(info.value)
    assert str(channel / "model.tar.gz") in str(info.value)


# ----- the architecture gate -----

def test_every_architecture_difference_is_named_and_regularisation_may_differ():
    stored = ModelConfig(source_vocab_size=10, target_vocab_size=10, **SIZES)
    hp = parse_hyperparameters(dict(SIZES, num_embed_source=8, rnn_num_hidden=64, rnn_attention_num_hidden=32,
                                    rnn_cell_type="gru", input_feeding="false", embed_dropout_source=0.3,
                                    rnn_decoder_hidden_dropout=0.2, max_seq_len_source=80, learning_rate=0.1,
                                    optimizer_type="sgd"))
    assert architecture_differences(hp, stored) == [
        "num_embed_source = 8 here, 16 in the stored model",
        "rnn_cell_type = gru here, lstm in the stored model",
        "rnn_num_hidden = 64 here, 32 in the stored model",
        "input_feeding = false here, true in the stored model",
    ]
    assert architecture_differences(parse_hyperparameters(SIZES), stored) == []


def test_attention_size_unset_means_the_hidden_size():
    stored = ModelConfig(source_vocab_size=10, target_vocab_size=10, **dict(SIZES, rnn_attention_num_hidden=None))
    assert architecture_differences(parse_hyperparameters(SIZES), stored) == []


def test_check_architecture_is_one_user_error(tmp_path):
    save_untrained_model(str(tmp_path), vocab("a"), vocab("b"))
    with open_stored_model(str(tmp_path)) as stored:
        with pytest.raises(UserError) as info:
            check_architecture(parse_hyperparameters(dict(SIZES, num_layers_decoder=2, weight_tying="true",
                                                          num_embed_target=32)), stored)
    message = str(info.value)
    assert "3 difference(s)" in message and "num_layers_decoder = 2 here, 1 in the stored model" in message
    assert "num_embed_target = 32 here, 16" in message and "weight_tying = true here, false" in message


# ----- vocabulary mapping and loading -----

def test_map_vocabulary_matches_tokens():
    mapping = map_vocabulary(vocab("c", "a", "new"), vocab("a", "b", "c"))
    assert list(zip(mapping.new_ids, mapping.stored_ids)) == [(0, 0), (1, 1), (2, 2), (3, 3), (4, 6), (5, 4)]
    assert (mapping.num_copied, mapping.num_new, mapping.num_dropped) == (6, 1, 1)
    assert not mapping.identical
    assert map_vocabulary(vocab("a", "b"), vocab("a", "b")).identical


@pytest.mark.parametrize("weight_tying", [False, True])
def test_load_into_copies_every_parameter_and_maps_rows_row_by_row(tmp_path, weight_tying):
    sizes = dict(SIZES, weight_tying=weight_tying, num_embed_target=32 if weight_tying else 16)
    stored_source, stored_target = vocab("s1", "s2", "s3"), vocab("t1", "t2", "t3", "t4")
    save_untrained_model(str(tmp_path), stored_source, stored_target, seed=1, **sizes)
    stored_values = {k: v.asnumpy() for k, v in mx.nd.load(str(tmp_path / "params.best")).items()}
    new_source, new_target = vocab("s3", "x", "s1"), vocab("t4", "t1", "y", "z", "t2")
    config = ModelConfig(source_vocab_size=len(new_source), target_vocab_size=len(new_target), **sizes)
    mx.random.seed(2)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(), [mx.cpu(0), mx.cpu(1)])
    fresh = {n: p.data().asnumpy().copy() for n, p in model._collect_params_with_prefix().items()}
    with open_stored_model(str(tmp_path)) as stored:
        report = load_into(model, stored, new_source, new_target)
    assert (report.source.num_copied, report.source.num_new, report.source.num_dropped) == (6, 1, 1)
    assert (report.target.num_copied, report.target.num_new, report.target.num_dropped) == (7, 2, 1)
    vocabulary_rows = {"encoder.embedding.weight": (new_source, stored_source),
                       "decoder.embedding.weight": (new_target, stored_target),
                       "decoder.output_layer.weight": (new_target, stored_target),
                       "decoder.output_layer.bias": (new_target, stored_target)}
    # A tied matrix is stored once, under its first name (decoder.embedding.weight).
    assert ("decoder.output_layer.weight" in stored_values) == (not weight_tying)
    names = model.shared_names()
    for name, parameter in model._collect_params_with_prefix().items():
        stored_name = next(alias for alias in names[name] if alias in stored_values)
        for ctx in (mx.cpu(0), mx.cpu(1)):
            value = parameter.data(ctx).asnumpy()
            if name not in vocabulary_rows:
                np.testing.assert_array_equal(value, stored_values[stored_name], err_msg=name)
                continue
            new, old = vocabulary_rows[name]
            for new_id, token in enumerate(new.id_to_token):
                if token in old.token_to_id():
                    np.testing.assert_array_equal(value[new_id], stored_values[stored_name][old.token_to_id()[token]],
                                                  err_msg=f"{name} {token}")
                else:
                    np.testing.assert_array_equal(value[new_id], fresh[name][new_id], err_msg=f"{name} {token}")


def test_identical_vocabularies_load_as_they_are(tmp_path):
    source, target = vocab("a", "b"), vocab("c", "d", "e")
    save_untrained_model(str(tmp_path), source, target, seed=3)
    config = ModelConfig(source_vocab_size=len(source), target_vocab_size=len(target), **SIZES)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(), mx.cpu())
    with open_stored_model(str(tmp_path)) as stored:
        report = load_into(model, stored, source, target)
    assert report.source.identical and report.target.identical
    assert report.lines()[0] == "source vocabulary: identical to the stored model's (6 tokens)"
    stored_values = mx.nd.load(str(tmp_path / "params.best"))
    for name, parameter in model._collect_params_with_prefix().items():
        np.testing.assert_array_equal(parameter.data().asnumpy(), stored_values[name].asnumpy())


def test_nested_archive_folder_and_several_archives(tmp_path):
    model_dir = tmp_path / "trained"
    save_untrained_model(str(model_dir), vocab("a"), vocab("b"))
    channel = tmp_path / "channel"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        tar.add(model_dir, arcname="model")
    with open_stored_model(str(channel)) as stored:
        assert stored.config.rnn_num_hidden == 32 and os.path.exists(stored.params_path)
        scratch = stored.directory
    assert not os.path.exists(scratch)  # the extraction is removed afterwards
    os.rename(channel / "model.tar.gz", channel / "a.tar.gz")
    (channel / "b.tgz").write_bytes(b"")
    with pytest.raises(UserError, match="holds several archives"):
        with open_stored_model(str(channel)):
            pass


def test_damaged_params_file_is_a_user_error(tmp_path):
    save_untrained_model(str(tmp_path), vocab("a"), vocab("b"))
    (tmp_path / "params.best").write_bytes(b"garbage")
    model = Seq2SeqModel(ModelConfig(source_vocab_size=5, target_vocab_size=5, **SIZES))
    model.initialize_parameters(mx.init.Xavier(), mx.cpu())
    with open_stored_model(str(tmp_path)) as stored:
        with pytest.raises(UserError, match="cannot be read as model parameters"):
            load_into(model, stored, vocab("a"), vocab("b"))


def test_an_archive_of_dot_entries_as_tar_writes_them(tmp_path):
    """`tar -czf model.tar.gz -C model .` names the members ./config.json, ...: they are plain relative names."""
    model_dir = tmp_path / "trained"
    save_untrained_model(str(model_dir), vocab("a"), vocab("b"))
    channel = tmp_path / "channel"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        tar.add(model_dir, arcname=".")
    with open_stored_model(str(channel)) as stored:
        assert stored.source_vocab == vocab("a") and os.path.exists(stored.params_path)
