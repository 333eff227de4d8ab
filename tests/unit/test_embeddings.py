"""Pretrained word vectors: reading word2vec/GloVe text, subword look-up, errors with file and line;
checkpointconfig.json's LocalPath."""

import json

import mxnet as mx
import numpy as np
import pytest

from seq2seq.data.vocab import Vocabulary
from seq2seq.embeddings import embedding_files, load_embedding_file, lookup_names, read_vectors
from seq2seq.errors import UserError
from seq2seq.opt_ml import SageMakerPaths


def vocab(*tokens):
    return Vocabulary({t: i for i, t in enumerate(("<pad>", "<unk>", "<s>", "</s>") + tokens)})


def write(path, text):
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def test_glove_and_word2vec_text_are_read(tmp_path):
    glove = write(tmp_path / "glove.txt", "the 0.1 0.2 0.3\ncat -1 2.5e-1 3\n\ndog 1 1 1 \n")
    vectors = read_vectors(glove, 3, {"cat", "dog", "absent"}, "num_embed_source")
    assert sorted(vectors) == ["cat", "dog"]
    np.testing.assert_array_equal(vectors["cat"], np.array([-1, 0.25, 3], dtype=np.float32))
    word2vec = write(tmp_path / "w2v.txt", "2 3\ncat 1 2 3\ncat 4 5 6\n")
    np.testing.assert_array_equal(read_vectors(word2vec, 3, {"cat"}, "x")["cat"], [1, 2, 3])  # first one wins


@pytest.mark.parametrize("text, message", [
    ("a 1 2 3\nb 1 2\n", "e.txt line 2: 2 numbers after the token, but num_embed_target is 3"),
    ("a 1 2 3\nb 1 two 3\n", "e.txt line 2: 'two' is not a number"),
    ("5 300\na 1 2 3\n", "e.txt line 1: the word2vec header gives dimension 300, but num_embed_target is 3"),
    ("a 1 nan 3\n", "e.txt line 1: the vector is not finite"),
    (b"a 1 2 3\n\xff\xfe 1 2 3\n", "e.txt line 2: not UTF-8"),
])
def test_bad_lines_name_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "e.txt", text)
    with pytest.raises(UserError) as info:
        read_vectors(path, 3, {"a"}, "num_embed_target")
    assert message in str(info.value) and str(info.value).startswith(f"embedding file {path} ")


def test_subword_pieces_match_with_and_without_the_boundary_mark():
    assert lookup_names("\u2581house", True) == ("\u2581house", "house")
    assert lookup_names("ing", True) == ("ing", "\u2581ing")
    assert lookup_names("\u2581house", False) == ("\u2581house",)


def test_rows_are_copied_and_the_share_is_counted(tmp_path):
    words = vocab("\u2581the", "\u2581cat", "s", "\u2581zebra")
    path = write(tmp_path / "embed.src.txt", "the 1 1\ncat 2 2\n\u2581s 3 3\n</s> 9 9\n")
    parameter = mx.gluon.Parameter("weight", shape=(len(words), 2))
    parameter.initialize(mx.init.Constant(0.5), ctx=[mx.cpu(0), mx.cpu(1)])
    load = load_embedding_file(parameter, "source", path, words, 2, subword=True)
    assert list(load.ids) == [4, 5, 6] and load.total == 4 and load.share == 0.75
    for ctx in (mx.cpu(0), mx.cpu(1)):
        value = parameter.data(ctx).asnumpy()
        np.testing.assert_array_equal(value[4:], [[1, 1], [2, 2], [3, 3], [0.5, 0.5]])
        np.testing.assert_array_equal(value[:4], np.full((4, 2), 0.5))  # reserved symbols keep their rows


def test_channel_without_either_file_is_an_error(tmp_path):
    (tmp_path / "vectors.bin").write_bytes(b"")
    with pytest.raises(UserError, match="has neither embed.src.txt nor embed.trg.txt .it holds: vectors.bin"):
        embedding_files(str(tmp_path))
    assert embedding_files(str(tmp_path / "absent")) == {}


# ----- checkpointconfig.json -----

def write_checkpoint_config(base, value):
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "checkpointconfig.json").write_text(json.dumps(value))


def test_checkpoint_dir_defaults_and_follows_local_path(tmp_path):
    paths = SageMakerPaths(str(tmp_path))
    assert paths.checkpoint_dir == str(tmp_path / "checkpoints")
    write_checkpoint_config(tmp_path, {"LocalPath": "/mnt/spot", "S3Path": "s3://b/p"})
    assert paths.checkpoint_dir == "/mnt/spot"
    write_checkpoint_config(tmp_path, {"LocalPath": "/opt/ml/checkpoints/run1"})  # relocated with the tree
    assert paths.checkpoint_dir == str(tmp_path / "checkpoints" / "run1")
    write_checkpoint_config(tmp_path, {"S3Path": "s3://b/p"})
    assert paths.checkpoint_dir == str(tmp_path / "checkpoints")


@pytest.mark.parametrize("value, message", [
    ({"LocalPath": "relative/dir"}, "LocalPath must be an absolute directory path"),
    ({"LocalPath": 3}, "LocalPath must be an absolute directory path"),
    (["LocalPath"], "must be a JSON object with LocalPath"),
])
def test_bad_checkpoint_config_is_a_user_error(tmp_path, value, message):
    write_checkpoint_config(tmp_path, value)
    with pytest.raises(UserError, match=message):
        SageMakerPaths(str(tmp_path)).checkpoint_dir


def test_gzip_files_are_read_and_a_damaged_one_names_the_line(tmp_path):
    import gzip
    lines = "".join(f"w{i} {i} {i}\n" for i in range(2000)).encode()
    (tmp_path / "embed.trg.txt.gz").write_bytes(gzip.compress(lines))
    assert embedding_files(str(tmp_path)) == {"target": str(tmp_path / "embed.trg.txt.gz")}
    vectors = read_vectors(str(tmp_path / "embed.trg.txt.gz"), 2, {"w1999"}, "num_embed_target")
    np.testing.assert_array_equal(vectors["w1999"], [1999, 1999])
    data = gzip.compress(lines)
    (tmp_path / "cut.txt.gz").write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match=r"cut.txt.gz line \d+: unreadable"):
        read_vectors(str(tmp_path / "cut.txt.gz"), 2, {"w1"}, "num_embed_target")
