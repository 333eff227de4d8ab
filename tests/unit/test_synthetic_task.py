"""The demo's synthetic translation task: lexicon, grammar, reordering rule and corpus files."""

import random

import pytest

from demo import synthetic_task as task


@pytest.fixture(scope="module")
def lexicon():
    return task.make_lexicon()


def test_lexicon_is_a_bijection_onto_new_words(lexicon):
    assert set(lexicon) == set(task.source_words())
    targets = list(lexicon.values())
    assert len(set(targets)) == len(targets)
    assert not set(targets) & (set(task.source_words()) | {task.OBJECT_MARKER})


def test_lexicon_depends_only_on_its_seed():
    assert task.make_lexicon(5) == task.make_lexicon(5)
    assert task.make_lexicon(5) != task.make_lexicon(6)


def test_intransitive_sentence_reorders_the_noun_phrase(lexicon):
    source = "the big red dog sleeps".split()
    expected = [lexicon[w] for w in ("dog", "red", "big", "the", "sleeps")]
    assert task.translate(source, lexicon) == expected


def test_transitive_sentence_puts_object_marker_and_verb_last(lexicon):
    source = "a cat sees every old king".split()
    expected = [lexicon["cat"], lexicon["a"], lexicon["king"], lexicon["old"], lexicon["every"],
                task.OBJECT_MARKER, lexicon["sees"]]
    assert task.translate(source, lexicon) == expected


@pytest.mark.parametrize("text, position", [
    ("dog sleeps", 0),             # no determiner
    ("the big sleeps", 2),         # no noun
    ("the dog the cat", 2),        # no verb
    ("the dog sees", 3),           # transitive verb without object
    ("the dog sleeps the cat", 3),  # trailing tokens
])
def test_parse_rejects_ungrammatical_sentences_naming_the_position(text, position):
    with pytest.raises(ValueError, match=f"(token|position) {position}( |$)"):
        task.parse(text.split())


def test_generated_pairs_follow_the_grammar_and_the_rule(lexicon):
    pairs = task.generate_pairs(500, seed=3, lexicon=lexicon)
    inverse = {target: source for source, target in lexicon.items()}
    for source, target in pairs:
        subject, verb, obj = task.parse(source)
        assert 3 <= len(source) <= 9
        assert target[-1] == lexicon[verb]
        assert (task.OBJECT_MARKER in target) == (obj is not None)
        # every target word but the marker translates a source word, with the same multiset
        back = sorted(inverse[word] for word in target if word != task.OBJECT_MARKER)
        assert back == sorted(source)
    transitive = sum(task.parse(s)[2] is not None for s, _ in pairs)
    assert 0.5 < transitive / len(pairs) < 0.8


def test_generation_is_deterministic(lexicon):
    assert task.generate_pairs(50, 11, lexicon) == task.generate_pairs(50, 11, lexicon)
    assert task.generate_pairs(50, 11, lexicon) != task.generate_pairs(50, 12, lexicon)


def test_noun_phrase_adjectives_are_distinct():
    rng = random.Random(0)
    for _ in range(300):
        phrase = task.random_noun_phrase(rng)
        assert len(set(phrase.adjectives)) == len(phrase.adjectives) <= 2


def test_write_corpus_writes_aligned_splits_with_unseen_test_sentences(tmp_path, lexicon):
    paths = task.write_corpus(str(tmp_path), train=400, validation=30, test=20, seed=1)
    assert set(paths) == {"train", "val", "test"}
    lines = {}
    for name, (source_path, target_path) in paths.items():
        sources = open(source_path, encoding="utf-8").read().splitlines()
        targets = open(target_path, encoding="utf-8").read().splitlines()
        assert len(sources) == len(targets) == {"train": 400, "val": 30, "test": 20}[name]
        for source, target in zip(sources, targets):
            assert task.translate(source.split(), lexicon) == target.split()
        lines[name] = set(sources)
    assert not lines["test"] & lines["train"]
    assert not lines["test"] & lines["val"]
    assert not lines["val"] & lines["train"]
    assert not list(tmp_path.glob("*.tmp*"))


def test_cli_writes_the_files(tmp_path, capsys):
    assert task.main(["--output", str(tmp_path), "--train", "20", "--validation", "5", "--test", "5"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "test.src", "test.trg", "train.src", "train.trg", "val.src", "val.trg"]
    assert "train:" in capsys.readouterr().out
