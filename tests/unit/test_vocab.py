"""Vocabulary rules (SageMaker's ordering, ties, limits), JSON files and validation."""

import json
import random
from collections import Counter

import pytest

from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seq2seq.data.vocab import Vocabulary, build_vocabulary, vocabulary_from_counts
from seq2seq.errors import UserError

RESERVED = ["<pad>", "<unk>", "<s>", "</s>"]


def tokens_of(vocab):
    return vocab.id_to_token[4:]


def test_descending_count_then_reverse_lexical_order():
    sentences = [["b", "a", "c"], ["a", "d", "c"], ["a", "e"], ["Z"]]
    vocab = build_vocabulary(sentences)
    # a:3, c:2, then b, d, e, Z with count 1 in reverse code point order
    assert tokens_of(vocab) == ["a", "c", "e", "d", "b", "Z"]
    assert vocab.id_to_token[:4] == RESERVED
    assert vocab.token_to_id()["a"] == 4


def test_ties_follow_reverse_sort_of_count_word_pairs():
    rng = random.Random(7)
    words = ["".join(rng.choice("abcäßé€") for _ in range(rng.randint(1, 4))) for _ in range(400)]
    sentences = [[rng.choice(words) for _ in range(rng.randint(0, 9))] for _ in range(300)]
    counts = Counter(token for sentence in sentences for token in sentence)
    expected = [word for _, word in sorted(((c, w) for w, c in counts.items()), reverse=True)]
    assert tokens_of(build_vocabulary(sentences)) == expected


def test_min_count_and_max_size():
    counts = {"x": 5, "y": 3, "z": 3, "w": 1}
    assert tokens_of(vocabulary_from_counts(counts, min_count=3)) == ["x", "z", "y"]
    assert tokens_of(vocabulary_from_counts(counts, max_size=2)) == ["x", "z"]
    assert tokens_of(vocabulary_from_counts(counts, min_count=3, max_size=1)) == ["x"]
    assert tokens_of(vocabulary_from_counts(counts, max_size=None)) == ["x", "z", "y", "w"]
    assert len(vocabulary_from_counts(counts, max_size=0)) == 4


def test_default_limit_is_50000_tokens():
    counts = {f"w{index}": 1 + index % 3 for index in range(50010)}
    vocab = vocabulary_from_counts(counts)
    assert len(vocab) == 50004
    assert vocab.id_to_token[4] == "w9998"  # count 3 (index % 3 == 2), lexically greatest of those


def test_reserved_symbols_in_the_data_keep_their_ids():
    vocab = build_vocabulary([["<unk>", "<s>", "hello", "</s>", "<pad>"]])
    assert vocab.id_to_token == RESERVED + ["hello"]


@pytest.mark.parametrize("min_count,max_size", [(0, 10), (1.5, 10), (1, -1), (True, 3)])
def test_bad_limits(min_count, max_size):
    with pytest.raises(UserError):
        vocabulary_from_counts({"a": 1}, min_count=min_count, max_size=max_size)


def test_encode_decode():
    vocab = build_vocabulary([["the", "cat"]])
    ids = vocab.encode(["the", "dog", "cat"])
    assert ids == [vocab.token_to_id()["the"], UNK_ID, vocab.token_to_id()["cat"]]
    assert vocab.decode([BOS_ID] + ids + [EOS_ID, PAD_ID]) == ["the", "<unk>", "cat"]
    assert vocab.decode([BOS_ID, 4], strip_special=False) == ["<s>", vocab.id_to_token[4]]
    with pytest.raises(UserError, match="outside the vocabulary"):
        vocab.decode([4, 99])


def test_save_writes_utf8_indent_4_and_loads_back(tmp_path):
    vocab = build_vocabulary([["Mädchen", "straße", "😀", "a"]])
    path = tmp_path / "vocab.src.json"
    vocab.save(path)
    text = path.read_text(encoding="utf-8")
    assert "Mädchen" in text and "\\u" not in text
    assert text.startswith('{\n    "<pad>": 0,\n    "<unk>": 1,\n    "<s>": 2,\n    "</s>": 3,')
    assert json.loads(text) == vocab.token_to_id()
    assert Vocabulary.load(path) == vocab
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.src.json"]


@pytest.mark.parametrize("content,message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"<pad>": 0, "<unk>": 1, "<s>": 2}', "'</s>' must have id 3, found no entry"),
    ('{"<pad>": 1, "<unk>": 0, "<s>": 2, "</s>": 3}', "'<pad>' must have id 0, found 1"),
    ('{"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": 5}', "outside 0..4"),
    ('{"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": "4"}', "must be an integer"),
    ('{"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "a": 3, "b": 4}', "id 3 is used by both"),
])
def test_load_rejects_bad_files_naming_them(tmp_path, content, message):
    path = tmp_path / "vocab.trg.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as caught:
        Vocabulary.load(path)
    assert str(path) in str(caught.value)


def test_load_missing_and_non_utf8(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Vocabulary.load(tmp_path / "absent.json")
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"\xe9": 4}')
    with pytest.raises(UserError, match="not UTF-8"):
        Vocabulary.load(path)
