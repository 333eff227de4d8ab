"""SentencePiece subwords through `python -m recordio_tools`: prepare, encode, decode, inspect on raw unicode text."""

import json
import os

import numpy as np
import pytest
import sentencepiece

from recordio_tools.__main__ import main
from recordio_tools.corpus import encode_corpus
from recordio_tools.options import load_text_setup
from seq2seq.data.recordio_codec import read_pairs
from seq2seq.data.subword import SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE, SubwordModel

ENGLISH = ["A man in a blue shirt is riding a bike.", "Two dogs play in the snow!", "The café's façade is naïve — "
           "isn't it?", "She said: \"yes\", then left.", "Children (three of them) run; 42 birds fly.",
           "Zoë eats crème brûlée at 5:30 pm."]
GERMAN = ["Ein Mann in einem blauen Hemd fährt Fahrrad.", "Zwei Hunde spielen im Schnee!", "Die Fassade des Cafés "
          "ist naiv – nicht wahr?", "Sie sagte: „ja“, dann ging sie.",
          "Kinder (drei davon) laufen; 42 Vögel fliegen.",
          "Zoë isst Crème brûlée um 17:30 Uhr — straße, Größe, Übermaß."]


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("".join(line + "\n" for line in lines))
    return str(path)


def corpus(directory, copies=40):
    rng = np.random.RandomState(3)
    order = rng.randint(0, len(ENGLISH), len(ENGLISH) * copies)
    return {"train_source": write_lines(directory / "train.en", [ENGLISH[i] for i in order]),
            "train_target": write_lines(directory / "train.de", [GERMAN[i] for i in order]),
            "val_source": write_lines(directory / "val.en", ENGLISH),
            "val_target": write_lines(directory / "val.de", GERMAN)}


def prepare(files, output, *extra):
    return main(["prepare", "--train-source", files["train_source"], "--train-target", files["train_target"],
                 "--val-source", files["val_source"], "--val-target", files["val_target"], "--output", str(output),
                 "--quiet", *extra])


def read_lines(path):
    with open(path, encoding="utf-8") as stream:
        return stream.read().split("\n")[:-1]


@pytest.mark.parametrize("kind", ["unigram", "bpe"])
def test_prepare_then_decode_gives_the_raw_unicode_text_back(tmp_path, kind):
    files = corpus(tmp_path)
    assert prepare(files, tmp_path / "out", "--subword", kind, "--subword-vocab-size", "120") == 0
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == sorted(["train.rec", "val.rec", "vocab.src.json", "vocab.trg.json", SUBWORD_SOURCE_FILE,
                            SUBWORD_TARGET_FILE])
    assert main(["decode", "--input", str(tmp_path / "out" / "val.rec"), "--vocab", str(tmp_path / "out"),
                 "--source", str(tmp_path / "d.en"), "--target", str(tmp_path / "d.de"), "--quiet"]) == 0
    assert read_lines(tmp_path / "d.en") == ENGLISH
    assert read_lines(tmp_path / "d.de") == GERMAN
    pairs = list(read_pairs(str(tmp_path / "out" / "train.rec")))
    assert len(pairs) == len(ENGLISH) * 40
    assert all(source.dtype == np.int32 and len(source) > 0 for source, _ in pairs)


def independent_vocab(path):
    """A vocab file read with json alone, refusing duplicate keys."""
    def no_duplicates(items):
        keys = [key for key, _ in items]
        assert len(keys) == len(set(keys)), "duplicate tokens in the vocab JSON"
        return dict(items)
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    return json.loads(text, object_pairs_hook=no_duplicates), text


@pytest.mark.parametrize("joint", [False, True])
def test_subword_vocab_json_is_amazons_format_with_every_piece_of_the_model(tmp_path, joint):
    files = corpus(tmp_path)
    extra = ["--joint-vocab"] if joint else []
    assert prepare(files, tmp_path / "out", "--subword", "unigram", "--subword-vocab-size", "150", *extra) == 0
    for vocab_name, model_name in (("vocab.src.json", SUBWORD_SOURCE_FILE), ("vocab.trg.json", SUBWORD_TARGET_FILE)):
        vocab, text = independent_vocab(tmp_path / "out" / vocab_name)
        assert text.startswith('{\n    "<pad>": 0,\n    "<unk>": 1,\n    "<s>": 2,\n    "</s>": 3,')
        assert sorted(vocab.values()) == list(range(len(vocab)))
        processor = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "out" / model_name))
        pieces = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
        assert vocab == pieces                       # every piece present, at its SentencePiece id
        assert len(vocab) > 4 and "\u2581" in "".join(vocab)
    models = [(tmp_path / "out" / name).read_bytes() for name in (SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE)]
    assert (models[0] == models[1]) == joint
    if joint:
        source_vocab, _ = independent_vocab(tmp_path / "out" / "vocab.src.json")
        assert "ß" in "".join(source_vocab) and "é" in "".join(source_vocab)


def test_encode_and_inspect_use_the_subword_models_of_the_vocab_directory(tmp_path, capsys):
    files = corpus(tmp_path)
    assert prepare(files, tmp_path / "out", "--subword", "bpe", "--subword-vocab-size", "120") == 0
    output = tmp_path / "again.rec"
    assert main(["encode", "--source", files["val_source"], "--target", files["val_target"],
                 "--vocab", str(tmp_path / "out"), "--output", str(output), "--quiet"]) == 0
    assert output.read_bytes() == (tmp_path / "out" / "val.rec").read_bytes()
    capsys.readouterr()
    assert main(["inspect", str(output), "--vocab", str(tmp_path / "out"), "--show", "2", "--quiet"]) == 0
    shown = capsys.readouterr().out
    assert f"source: {ENGLISH[0]}" in shown and f"target: {GERMAN[1]}" in shown


@pytest.mark.parametrize("subword", [True, False])
def test_encoding_in_worker_processes_writes_the_same_bytes(tmp_path, subword):
    files = corpus(tmp_path, copies=200)
    extra = ["--subword", "unigram", "--subword-vocab-size", "200"] if subword else []
    assert prepare(files, tmp_path / "out", *extra, "--jobs", "1") == 0
    source_vocab, target_vocab, models = load_text_setup(str(tmp_path / "out"))
    assert (models is not None) == subword
    for jobs in (1, 2):
        stats = encode_corpus(files["train_source"], files["train_target"], source_vocab, target_vocab,
                              str(tmp_path / f"jobs{jobs}.rec"), progress_enabled=False, subword=models, jobs=jobs,
                              block_bytes=4096)    # dozens of blocks, in flight at once
        assert stats.pairs_written == len(ENGLISH) * 200
    reference = (tmp_path / "out" / "train.rec").read_bytes()
    assert (tmp_path / "jobs1.rec").read_bytes() == reference
    assert (tmp_path / "jobs2.rec").read_bytes() == reference


def test_subword_setups_that_do_not_fit_together_are_clear_errors(tmp_path, capsys):
    files = corpus(tmp_path)
    assert prepare(files, tmp_path / "a", "--subword", "unigram", "--subword-vocab-size", "120") == 0
    assert prepare(files, tmp_path / "b", "--subword", "bpe", "--subword-vocab-size", "90") == 0
    (tmp_path / "b" / SUBWORD_SOURCE_FILE).write_bytes((tmp_path / "a" / SUBWORD_SOURCE_FILE).read_bytes())
    capsys.readouterr()
    decode = ["decode", "--input", str(tmp_path / "b" / "val.rec"), "--source", str(tmp_path / "x"),
              "--target", str(tmp_path / "y"), "--quiet", "--vocab"]
    assert main(decode + [str(tmp_path / "b")]) == 1
    error = capsys.readouterr().err
    assert "vocab.src.json" in error and SUBWORD_SOURCE_FILE in error and "Traceback" not in error
    os.remove(tmp_path / "a" / SUBWORD_TARGET_FILE)
    assert main(decode + [str(tmp_path / "a")]) == 1
    assert f"{SUBWORD_TARGET_FILE} is missing" in capsys.readouterr().err


def test_invalid_utf8_in_subword_training_text_names_file_and_line(tmp_path, capsys):
    files = corpus(tmp_path)
    with open(files["train_target"], "ab") as stream:
        stream.write(b"gut\n\xff kaputt\n")
    assert prepare(files, tmp_path / "out", "--subword", "unigram", "--subword-vocab-size", "120") == 1
    error = capsys.readouterr().err
    assert f"{files['train_target']}, line {len(ENGLISH) * 40 + 2}: invalid UTF-8" in error


def test_subword_model_survives_pickling_for_worker_processes(tmp_path):
    import pickle
    files = corpus(tmp_path)
    assert prepare(files, tmp_path / "out", "--subword", "unigram", "--subword-vocab-size", "120") == 0
    model = SubwordModel.load(tmp_path / "out" / SUBWORD_TARGET_FILE)
    copy = pickle.loads(pickle.dumps(model))
    ids, pieces = copy.encode_text(GERMAN[3])
    assert copy.decode(ids) == GERMAN[3] and pieces == [model.pieces[i] for i in ids]
