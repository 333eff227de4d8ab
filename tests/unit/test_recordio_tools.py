"""`python -m recordio_tools` end to end, and Multi30k output checked by an independent reader."""

import itertools
import json
import os
import struct
import subprocess
import sys

import pytest

from recordio_tools.__main__ import main
from seq2seq.data.recordio_codec import pairs_to_bytes
from seq2seq.shared_data import shared_data_dir

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MULTI30K = str(shared_data_dir("multi30k"))


# --- an independent reader written from the specification (struct + protobuf wire format) ------

def varint(data, position):
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, position


def fields(data):
    """(field number, wire type, value) of a protobuf message; LEN values as bytes."""
    position = 0
    while position < len(data):
        key, position = varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = varint(data, position)
        elif wire == 2:
            length, position = varint(data, position)
            value, position = data[position:position + length], position + length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        yield number, wire, value


def parse_record(payload):
    """{"source": ids, "target": ids} from Record.features (field 1) -> Value.int32_tensor (7) -> values (1)."""
    features = {}
    for number, wire, entry in fields(payload):
        assert (number, wire) == (1, 2), "only features expected"
        entry_fields = {n: v for n, _, v in fields(entry)}
        key = entry_fields[1].decode("utf-8")
        (tensor_number, _, tensor), = list(fields(entry_fields[2]))
        assert tensor_number == 7, "int32_tensor"
        ids = []
        for value_number, value_wire, packed in fields(tensor):
            assert (value_number, value_wire) == (1, 2), "packed values only"
            position = 0
            while position < len(packed):
                value, position = varint(packed, position)
                ids.append(value)
        features[key] = ids
    return features


def read_rec(path):
    data = open(path, "rb").read()
    records, offset = [], 0
    while offset < len(data):
        magic, lrecord = struct.unpack_from("<II", data, offset)
        assert magic == 0xCED7230A
        assert lrecord >> 29 == 0, "our writer emits whole records"
        length = lrecord & ((1 << 29) - 1)
        records.append(parse_record(data[offset + 8:offset + 8 + length]))
        padding = data[offset + 8 + length:offset + 8 + (length + 3) // 4 * 4]
        assert padding == b"\0" * len(padding)
        offset += 8 + (length + 3) // 4 * 4
    assert offset == len(data)
    return records


def expected_records(source_lines, target_lines, source_vocab, target_vocab):
    records = []
    for source, target in zip(source_lines, target_lines):
        if source.split() and target.split():
            records.append({"source": [source_vocab.get(t, 1) for t in source.split()],
                            "target": [target_vocab.get(t, 1) for t in target.split()]})
    return records


def expected_vocab(lines, min_count=1, max_size=50000):
    counts = {}
    for line in lines:
        for token in line.split():
            counts[token] = counts.get(token, 0) + 1
    ranked = sorted(((c, w) for w, c in counts.items() if c >= min_count), reverse=True)[:max_size]
    return {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>"] + [w for _, w in ranked])}


# --- CLI on small files ---------------------------------------------------------------------

SOURCE = ["ein kleiner Hund", "", "zwei Männer   laufen", "ein Hund", "  ", "Ganz neu hier"]
TARGET = ["a small dog", "nothing", "", "a dog", "blank", "Brand new here"]


@pytest.fixture
def corpus(tmp_path):
    def write(name, lines):
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return str(path)
    return {"source": write("train.de", SOURCE), "target": write("train.en", TARGET),
            "val_source": write("val.de", ["ein Hund läuft", "unbekannt"]),
            "val_target": write("val.en", ["a dog runs", "unknown"]), "dir": tmp_path}


def run_cli(*argv):
    return main([str(arg) for arg in argv])


def test_prepare_end_to_end(corpus, capsys):
    out = corpus["dir"] / "out"
    status = run_cli("prepare", "--train-source", corpus["source"], "--train-target", corpus["target"],
                     "--val-source", corpus["val_source"], "--val-target", corpus["val_target"], "--output", out)
    assert status == 0
    assert sorted(os.listdir(out)) == ["train.rec", "val.rec", "vocab.src.json", "vocab.trg.json"]
    source_vocab = json.loads((out / "vocab.src.json").read_text(encoding="utf-8"))
    target_vocab = json.loads((out / "vocab.trg.json").read_text(encoding="utf-8"))
    assert source_vocab == expected_vocab(SOURCE) and target_vocab == expected_vocab(TARGET)
    assert read_rec(out / "train.rec") == expected_records(SOURCE, TARGET, source_vocab, target_vocab)
    assert read_rec(out / "val.rec") == [
        {"source": [source_vocab["ein"], source_vocab["Hund"], 1], "target": [target_vocab["a"], target_vocab["dog"], 1]},
        {"source": [1], "target": [1]}]
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    assert "3 train pairs written (3 skipped)" in summary[0] and "2 validation pairs written (0 skipped)" in summary[0]
    assert "unknown tokens train 0.00% validation 50.00%" in summary[0]   # 4 of 8 tokens


def test_joint_vocab_and_limits(corpus, capsys):
    out = corpus["dir"] / "vocab"
    assert run_cli("vocab", "--source", corpus["source"], "--target", corpus["target"], "--output", out,
                   "--joint-vocab", "--min-count", 2) == 0
    source_text = (out / "vocab.src.json").read_text(encoding="utf-8")
    assert source_text == (out / "vocab.trg.json").read_text(encoding="utf-8")
    assert json.loads(source_text) == expected_vocab(SOURCE + TARGET, min_count=2)
    assert run_cli("vocab", "--source", corpus["source"], "--target", corpus["target"], "--output", out,
                   "--max-vocab-size", 1) == 0
    assert list(json.loads((out / "vocab.src.json").read_text())) == ["<pad>", "<unk>", "<s>", "</s>", "ein"]
    assert "vocab:" in capsys.readouterr().out


def test_encode_then_decode_gives_the_text_back(corpus, capsys):
    vocab_dir, rec = corpus["dir"] / "v", corpus["dir"] / "x.rec"
    assert run_cli("vocab", "--source", corpus["source"], "--target", corpus["target"], "--output", vocab_dir) == 0
    assert run_cli("encode", "--source", corpus["source"], "--target", corpus["target"],
                   "--vocab", vocab_dir, "--output", rec) == 0
    assert "3 pairs written, 3 skipped (empty side), unknown tokens 0.00%" in capsys.readouterr().out
    decoded_source, decoded_target = corpus["dir"] / "d.de", corpus["dir"] / "d.en"
    assert run_cli("decode", "--input", rec, "--vocab", vocab_dir, "--source", decoded_source,
                   "--target", decoded_target) == 0
    kept = [(s, t) for s, t in zip(SOURCE, TARGET) if s.split() and t.split()]
    assert decoded_source.read_text(encoding="utf-8").splitlines() == [" ".join(s.split()) for s, _ in kept]
    assert decoded_target.read_text(encoding="utf-8").splitlines() == [" ".join(t.split()) for _, t in kept]


def test_inspect(corpus, capsys):
    vocab_dir, rec = corpus["dir"] / "v", corpus["dir"] / "x.rec"
    run_cli("vocab", "--source", corpus["source"], "--target", corpus["target"], "--output", vocab_dir)
    run_cli("encode", "--source", corpus["val_source"], "--target", corpus["val_target"],
            "--vocab", vocab_dir, "--output", rec)
    capsys.readouterr()
    assert run_cli("inspect", rec, "--vocab", vocab_dir, "--show", 1) == 0
    out = capsys.readouterr().out
    assert "2 records, 8 tokens, <unk> 50.00%" in out
    assert "source length: min 1, mean 2.0, median 2, p95 2.9, max 3, empty 0" in out
    assert "[0] source: ein Hund <unk>" in out and "[1]" not in out
    assert run_cli("inspect", rec) == 0
    assert "source ids [" in capsys.readouterr().out


def test_bad_inputs_give_one_line_errors(corpus, tmp_path, capsys):
    short = tmp_path / "short.en"
    short.write_text("one line\n", encoding="utf-8")
    assert run_cli("vocab", "--source", corpus["source"], "--target", corpus["target"], "--output", tmp_path / "v") == 0
    assert run_cli("encode", "--source", corpus["source"], "--target", short, "--vocab", tmp_path / "v",
                   "--output", tmp_path / "y.rec") == 1
    assert "error: parallel files differ in length" in capsys.readouterr().err
    assert not (tmp_path / "y.rec").exists()
    corrupt = tmp_path / "corrupt.rec"
    corrupt.write_bytes(pairs_to_bytes([([4], [5])])[:-3])
    assert run_cli("inspect", corrupt) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "corrupt.rec, record 0, byte offset 0: truncated record payload" in err
    assert run_cli("encode", "--source", corpus["source"], "--target", corpus["target"], "--vocab",
                   tmp_path / "nowhere", "--output", tmp_path / "z.rec") == 1
    assert "vocabulary directory" in capsys.readouterr().err


def test_every_subcommand_has_help():
    for command in ["prepare", "vocab", "encode", "decode", "inspect"]:
        result = subprocess.run([sys.executable, "-m", "recordio_tools", command, "--help"], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "usage: python -m recordio_tools " + command in result.stdout


# --- Multi30k ---------------------------------------------------------------------------------

def head(path, count, out):
    with open(path, encoding="utf-8") as source:
        lines = list(itertools.islice(source, count))
    out.write_text("".join(lines), encoding="utf-8")
    return [line.rstrip("\n") for line in lines]


def check_prepare_on_multi30k(tmp_path, lines):
    names = {}
    data = {}
    for name in ["train.en", "train.de", "val.en", "val.de"]:
        names[name] = tmp_path / name
        data[name] = head(os.path.join(MULTI30K, name), lines, names[name])
    out = tmp_path / "out"
    assert run_cli("prepare", "--train-source", names["train.en"], "--train-target", names["train.de"],
                   "--val-source", names["val.en"], "--val-target", names["val.de"], "--output", out,
                   "--quiet") == 0
    source_vocab = json.loads((out / "vocab.src.json").read_text(encoding="utf-8"))
    target_vocab = json.loads((out / "vocab.trg.json").read_text(encoding="utf-8"))
    assert source_vocab == expected_vocab(data["train.en"])
    assert target_vocab == expected_vocab(data["train.de"])
    train = read_rec(out / "train.rec")
    assert train == expected_records(data["train.en"], data["train.de"], source_vocab, target_vocab)
    val = read_rec(out / "val.rec")
    assert val == expected_records(data["val.en"], data["val.de"], source_vocab, target_vocab)
    return train, val


@pytest.mark.skipif(not os.path.isdir(MULTI30K), reason="shared Multi30k data not present")
def test_prepare_multi30k_head_matches_independent_reader(tmp_path):
    train, val = check_prepare_on_multi30k(tmp_path, 2000)
    assert len(train) == 2000 and len(val) == 1014


@pytest.mark.system
@pytest.mark.skipif(not os.path.isdir(MULTI30K), reason="shared Multi30k data not present")
def test_prepare_full_multi30k_matches_independent_reader(tmp_path):
    train, val = check_prepare_on_multi30k(tmp_path, 10 ** 9)
    assert len(train) == 29000 and len(val) == 1014
