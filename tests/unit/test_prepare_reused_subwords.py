"""`prepare --subword-models-from MODEL`: new data cut into the pieces of a trained model (for fine-tuning it)."""

import os
import tarfile

import pytest

from seq2seq.data.recordio_codec import read_pairs
from seq2seq.data.subword import SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE, SubwordModel
from seq2seq.data.vocab import Vocabulary
from tests.unit.test_subword import ENGLISH, GERMAN, corpus, prepare, write_lines


@pytest.mark.parametrize("as_archive", [False, True], ids=["directory", "model.tar.gz"])
def test_new_data_uses_the_stored_models_pieces_and_vocabularies(tmp_path, as_archive):
    first = tmp_path / "first"
    first.mkdir()
    assert prepare(corpus(first), tmp_path / "model", "--subword", "unigram", "--subword-vocab-size", "120") == 0
    model = str(tmp_path / "model")
    if as_archive:
        with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
            for name in os.listdir(model):
                tar.add(os.path.join(model, name), arcname=name)
        model = str(tmp_path / "model.tar.gz")
    second = tmp_path / "second"
    second.mkdir()
    files = {"train_source": write_lines(second / "t.en", list(reversed(ENGLISH)) * 3),
             "train_target": write_lines(second / "t.de", list(reversed(GERMAN)) * 3),
             "val_source": write_lines(second / "v.en", ENGLISH[:2]),
             "val_target": write_lines(second / "v.de", GERMAN[:2])}
    assert prepare(files, tmp_path / "out", "--subword-models-from", model) == 0
    for name in (SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "model" / name).read_bytes()
    for name in ("vocab.src.json", "vocab.trg.json"):
        assert Vocabulary.load(tmp_path / "out" / name) == Vocabulary.load(tmp_path / "model" / name)
    source_model = SubwordModel.load(tmp_path / "model" / SUBWORD_SOURCE_FILE)
    pairs = list(read_pairs(str(tmp_path / "out" / "val.rec")))
    assert [list(source) for source, _ in pairs] == source_model.encode_lines(ENGLISH[:2])


def test_a_model_without_subword_models_is_an_error(tmp_path, capsys):
    files = corpus(tmp_path)
    (tmp_path / "words").mkdir()
    assert prepare(files, tmp_path / "out", "--subword-models-from", str(tmp_path / "words")) == 1
    assert "has no subword.src.model / subword.trg.model" in capsys.readouterr().err
    assert prepare(files, tmp_path / "out", "--subword-models-from", str(tmp_path / "words"), "--subword",
                   "bpe") == 1
    assert "give one of them" in capsys.readouterr().err
