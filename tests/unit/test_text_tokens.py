"""Text side of recordio_tools: line blocks of parallel files and the vectorized token lookup."""

import gzip
import random

import numpy as np
import pytest

from recordio_tools.corpus import build_vocabularies
from recordio_tools.line_blocks import LineBlocks, iter_blocks, iter_parallel_blocks
from recordio_tools.token_ids import KEY_BYTES, WHITESPACE, TokenIdMapper
from seq2seq.errors import UserError


def reference_ids(text, vocab):
    """What SageMaker's script does per line: str.split(), dict lookup, <unk> = 1."""
    lines = text.split("\n")[:-1]
    return ([vocab.get(token, 1) for line in lines for token in line.split()],
            [len(line.split()) for line in lines])


def random_text(rng, words, lines):
    alphabet = list("abcxyzäöü€😀<>.,") + list(WHITESPACE.replace("\n", "")) + ["\x00", "\x07", "\x1b", "\x7f"]
    out = []
    for _ in range(lines):
        parts = []
        for _ in range(rng.randint(0, 12)):
            if rng.random() < 0.7:
                parts.append(rng.choice(words))
            else:
                parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
            parts.append("".join(rng.choice(WHITESPACE.replace("\n", "")) for _ in range(rng.randint(1, 3))))
        out.append("".join(parts))
    return "\n".join(out) + "\n"


def test_whitespace_set_is_that_of_str_split():
    assert all(("a" + char + "b").split() == ["a", "b"] for char in WHITESPACE)
    assert not any(chr(code).isspace() for code in range(0x3001, 0x110000))


def test_vectorized_lookup_matches_str_split_on_random_unicode():
    rng = random.Random(11)
    words = ["".join(rng.choice("abäö€😀\x00\x1b") for _ in range(rng.randint(1, 2 * KEY_BYTES)))
             for _ in range(3000)]
    vocab = {word: index + 4 for index, word in enumerate(dict.fromkeys(words))}
    mapper = TokenIdMapper(vocab)
    for _ in range(60):
        text = random_text(rng, words, rng.randint(1, 40))
        ids, per_line = mapper.map_block(text.encode("utf-8"))
        expected_ids, expected_lines = reference_ids(text, vocab)
        assert ids.tolist() == expected_ids and per_line.tolist() == expected_lines


def test_tokens_differing_only_in_length_or_trailing_nul():
    vocab = {"a": 4, "a\x00": 5, "x" * 8: 6, "x" * 9: 7, "y" * 24: 8, "y" * 25: 9}
    mapper = TokenIdMapper(vocab)
    text = "a a\x00 a\x00\x00 xxxxxxxx xxxxxxxxx xxxxxxx " + "y" * 24 + " " + "y" * 25 + " " + "y" * 26 + "\n"
    ids, per_line = mapper.map_block(text.encode("utf-8"))
    assert ids.tolist() == [4, 5, 1, 6, 7, 1, 8, 9, 1] and per_line.tolist() == [9]


def test_empty_and_blank_lines():
    mapper = TokenIdMapper({"a": 4})
    ids, per_line = mapper.map_block(b"\n  \t\na\n\xe3\x80\x80\n a a \n")
    assert ids.tolist() == [4, 4, 4] and per_line.tolist() == [0, 0, 1, 0, 2]


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def collect(path, block_bytes):
    with LineBlocks(path, block_bytes=block_bytes) as lines:
        return b"".join(iter_blocks(lines))


@pytest.mark.parametrize("block_bytes", [1, 3, 7, 1 << 20])
def test_newlines_are_universal_and_blocks_hold_whole_lines(tmp_path, block_bytes):
    path = write(tmp_path / "a.txt", b"one\r\ntwo\rthree\n\nfour")
    assert collect(path, block_bytes) == b"one\ntwo\nthree\n\nfour\n"
    assert collect(write(tmp_path / "b.txt", b"x\r"), block_bytes) == b"x\n"
    assert collect(write(tmp_path / "c.txt", b""), block_bytes) == b""


def test_gzip_input(tmp_path):
    path = tmp_path / "a.txt.gz"
    with gzip.open(path, "wb") as out:
        out.write("Mädchen läuft\nzwei\n".encode("utf-8"))
    assert collect(path, 5) == "Mädchen läuft\nzwei\n".encode("utf-8")


def test_parallel_blocks_align_lines(tmp_path):
    rng = random.Random(3)
    source_lines = [" ".join("s" * rng.randint(1, 30) for _ in range(rng.randint(0, 20))) for _ in range(300)]
    target_lines = [" ".join("t" * rng.randint(1, 5) for _ in range(rng.randint(0, 3))) for _ in range(300)]
    source = write(tmp_path / "s.txt", ("\n".join(source_lines) + "\n").encode())
    target = write(tmp_path / "t.txt", ("\n".join(target_lines)).encode())
    pairs = []
    with LineBlocks(source, 97) as s, LineBlocks(target, 13) as t:
        for source_block, target_block, count in iter_parallel_blocks(s, t):
            assert source_block.count(b"\n") == target_block.count(b"\n") == count
            pairs.extend(zip(source_block.decode().split("\n")[:-1], target_block.decode().split("\n")[:-1]))
    assert pairs == list(zip(source_lines, target_lines))


def test_parallel_files_of_different_length(tmp_path):
    source = write(tmp_path / "s.txt", b"a\nb\nc\n")
    target = write(tmp_path / "t.txt", b"a\nb\n")
    with LineBlocks(source) as s, LineBlocks(target) as t:
        with pytest.raises(UserError, match=r"s.txt has 3 lines, .*t.txt has 2 lines"):
            list(iter_parallel_blocks(s, t))


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.txt", b"fine\nalso fine\nbro\xc3ken\n")
    with LineBlocks(path, 4) as lines:
        with pytest.raises(UserError, match=r"bad.txt, line 3: invalid UTF-8 byte 0xc3 at column 4"):
            list(iter_blocks(lines))


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        LineBlocks(tmp_path / "absent.txt")


def test_lookup_table_handles_empty_vocabulary():
    ids, per_line = TokenIdMapper({}).map_block(b"a b\n")
    assert ids.tolist() == [1, 1] and per_line.tolist() == [2]
    assert np.issubdtype(ids.dtype, np.integer)


def test_vocabulary_tokens_holding_newlines_do_not_shift_the_others():
    vocab = {"a\nb": 4, "c": 5, "d" * 30: 6, "e": 7}
    mapper = TokenIdMapper(vocab)
    ids, _ = mapper.map_block(("c e " + "d" * 30 + " a\n").encode())
    assert ids.tolist() == [5, 7, 6, 1]


TRICKY = ["abcdefg", "abcdefg\x07", "abcdefgh", "abcdefgh\x00", "abcdefgh\x00\x00", "0123456789abcdef",
          "0123456789abcde\x0f", "0123456789abcde\x0fz", "0123456789abcdefg", "x" * 23, "x" * 24, "x" * 40,
          "\x01", "\x01\x00", "\x07\x00\x00\x00\x00\x00\x00"]


@pytest.mark.parametrize("collide", [False, True])
def test_tokens_that_differ_only_in_length_or_look_like_lengths(monkeypatch, collide):
    """Keys hold the length in a top byte; tokens whose bytes could pass for one take the dictionary."""
    from recordio_tools import token_ids
    if collide:   # every token hashes to slot 0: the whole table is one probe chain
        monkeypatch.setattr(token_ids, "_slots", lambda keys, bits: np.zeros(len(keys[0]), dtype=np.int64))
    vocab = {token: index + 4 for index, token in enumerate(TRICKY[::2])}
    mapper = TokenIdMapper(vocab)
    text = " ".join(TRICKY + [token + "q" for token in TRICKY]) + "\n"
    ids, _ = mapper.map_block(text.encode())
    assert ids.tolist() == [vocab.get(token, 1) for token in text.split()]


def _random_corpus(tmp_path, name, lines, seed):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(60)] + ["ä", "日本", "x" * 30]
    text = "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(0, 9))) for _ in range(lines))
    return write(tmp_path / name, (text + "\n").encode("utf-8"))


@pytest.mark.parametrize("joint", [False, True])
def test_vocabularies_counted_in_parallel_equal_one_pass(tmp_path, joint):
    source = _random_corpus(tmp_path, "s.txt", 3000, 1)
    target = _random_corpus(tmp_path, "t.txt", 3000, 2)
    one = build_vocabularies(source, target, min_count=2, max_size=40, joint=joint, progress_enabled=False, jobs=1)
    two = build_vocabularies(source, target, min_count=2, max_size=40, joint=joint, progress_enabled=False, jobs=2)
    assert [v.id_to_token for v in one] == [v.id_to_token for v in two]   # same tokens, same ids
    assert 10 < len(one[0]) <= 44 and (one[0] == one[1]) == joint


def test_parallel_counting_reports_the_target_files_error(tmp_path):
    source = _random_corpus(tmp_path, "s.txt", 10, 1)
    target = write(tmp_path / "t.txt", b"fine\nbro\xc3ken\n")
    with pytest.raises(UserError, match=r"t.txt, line 2: invalid UTF-8 byte 0xc3"):
        build_vocabularies(source, target, progress_enabled=False, jobs=2)
