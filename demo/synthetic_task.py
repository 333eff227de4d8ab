"""A small synthetic translation task of our own, for the demo and tests.

The source side is English-like: `DET ADJ* NOUN VERB [DET ADJ* NOUN]`, e.g.
`the big red dog sees a small cat`. The target language ("Tovic") has its own word for every source
word (a fixed, seeded lexicon of invented words) and a different word order:

* adjectives follow the noun, in reverse order, and the determiner closes the noun phrase:
  `the big red dog` -> `<dog> <red> <big> <the>`;
* the verb goes last (subject-object-verb), and the object phrase is marked by the particle `ko`:
  `the dog sees a cat` -> `<dog> <the> <cat> <a> ko <sees>`.

The lexicon is a bijection, word classes are disjoint, and `translate` is a pure function of the
source tokens, so every source sentence has exactly one reference. A small attentional RNN learns
the task (lexicon + reordering + insertion) in a few minutes on two CPU cores.

    python -m demo.synthetic_task --output DIR [--train 8000 --validation 300 --test 100 --seed 7]

writes DIR/{train,val,test}.{src,trg}: one whitespace-tokenized sentence per line (with --raw, raw text:
`The big red dog sees a small cat.`).
"""

import argparse
import os
import random
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from seq2seq.atomic_write import atomic_output

DETERMINERS = ("the", "a", "this", "every")
ADJECTIVES = ("big", "small", "red", "green", "old", "young", "happy", "sad",
              "tall", "short", "fast", "slow", "bright", "dark", "quiet", "loud")
NOUNS = ("dog", "cat", "bird", "horse", "child", "teacher", "farmer", "king",
         "queen", "river", "house", "tree", "stone", "ship", "city", "garden",
         "apple", "book", "song", "letter", "wolf", "fish", "cloud", "road")
TRANSITIVE_VERBS = ("sees", "likes", "finds", "follows", "builds", "paints",
                    "carries", "watches", "calls", "helps", "reads", "sells")
INTRANSITIVE_VERBS = ("sleeps", "runs", "sings", "waits", "falls", "smiles", "swims", "laughs")
OBJECT_MARKER = "ko"

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
DEFAULT_LEXICON_SEED = 1234
SPLIT_NAMES = ("train", "val", "test")


def source_words() -> Tuple[str, ...]:
    """Every source word, by word class."""
    return DETERMINERS + ADJECTIVES + NOUNS + TRANSITIVE_VERBS + INTRANSITIVE_VERBS


def make_lexicon(seed: int = DEFAULT_LEXICON_SEED) -> Dict[str, str]:
    """A bijection source word -> invented target word of two or three CV syllables.

    Target words never equal a source word or the object marker; the mapping depends only on `seed`.
    """
    rng = random.Random(seed)
    taken = set(source_words()) | {OBJECT_MARKER}
    lexicon = {}
    for word in source_words():
        while True:
            syllables = rng.choice((2, 2, 3))
            candidate = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))
            if candidate not in taken:
                break
        taken.add(candidate)
        lexicon[word] = candidate
    return lexicon


@dataclass(frozen=True)
class NounPhrase:
    """`determiner adjectives... noun` on the source side."""

    determiner: str
    adjectives: Tuple[str, ...]
    noun: str

    def source(self) -> List[str]:
        return [self.determiner, *self.adjectives, self.noun]

    def target(self, lexicon: Dict[str, str]) -> List[str]:
        """Noun first, then the adjectives in reverse order, then the determiner."""
        return [lexicon[self.noun], *(lexicon[a] for a in reversed(self.adjectives)), lexicon[self.determiner]]


def random_noun_phrase(rng: random.Random, max_adjectives: int = 2) -> NounPhrase:
    """A noun phrase with 0..max_adjectives distinct adjectives (fewer more likely)."""
    count = min(max_adjectives, rng.choice((0, 0, 1, 1, 2)))
    return NounPhrase(rng.choice(DETERMINERS), tuple(rng.sample(ADJECTIVES, count)), rng.choice(NOUNS))


def random_sentence(rng: random.Random) -> List[str]:
    """One source sentence (tokens): transitive two times in three, else intransitive."""
    subject = random_noun_phrase(rng)
    if rng.random() < 2 / 3:
        return subject.source() + [rng.choice(TRANSITIVE_VERBS)] + random_noun_phrase(rng).source()
    return subject.source() + [rng.choice(INTRANSITIVE_VERBS)]


def parse(tokens: Sequence[str]) -> Tuple[NounPhrase, str, "NounPhrase | None"]:
    """Split a source sentence into (subject, verb, object or None); ValueError if it is not one."""
    position = 0

    def noun_phrase() -> NounPhrase:
        nonlocal position
        if position >= len(tokens) or tokens[position] not in DETERMINERS:
            raise ValueError(f"expected a determiner at token {position} of {' '.join(tokens)!r}")
        determiner = tokens[position]
        position += 1
        adjectives = []
        while position < len(tokens) and tokens[position] in ADJECTIVES:
            adjectives.append(tokens[position])
            position += 1
        if position >= len(tokens) or tokens[position] not in NOUNS:
            raise ValueError(f"expected a noun at token {position} of {' '.join(tokens)!r}")
        position += 1
        return NounPhrase(determiner, tuple(adjectives), tokens[position - 1])

    subject = noun_phrase()
    if position >= len(tokens) or tokens[position] not in TRANSITIVE_VERBS + INTRANSITIVE_VERBS:
        raise ValueError(f"expected a verb at token {position} of {' '.join(tokens)!r}")
    verb = tokens[position]
    position += 1
    obj = noun_phrase() if verb in TRANSITIVE_VERBS else None
    if position != len(tokens):
        raise ValueError(f"unexpected tokens after position {position} in {' '.join(tokens)!r}")
    return subject, verb, obj


def translate(tokens: Sequence[str], lexicon: Dict[str, str]) -> List[str]:
    """The reference translation: subject, [object ko], verb, each phrase in target order."""
    subject, verb, obj = parse(tokens)
    target = subject.target(lexicon)
    if obj is not None:
        target += obj.target(lexicon) + [OBJECT_MARKER]
    return target + [lexicon[verb]]


def generate_pairs(count: int, seed: int, lexicon: Dict[str, str]) -> List[Tuple[List[str], List[str]]]:
    """`count` (source tokens, target tokens) pairs drawn with `seed`."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        source = random_sentence(rng)
        pairs.append((source, translate(source, lexicon)))
    return pairs


def raw_sentence(tokens: Sequence[str]) -> str:
    """The sentence as raw text: first letter upper-cased, a full stop attached ("The dog runs.")."""
    text = " ".join(tokens)
    return text[:1].upper() + text[1:] + "."


def split_sizes(train: int, validation: int, test: int) -> Dict[str, int]:
    """The split name -> size mapping used by write_corpus."""
    return dict(zip(SPLIT_NAMES, (train, validation, test)))


def write_corpus(output_dir: str, train: int = 8000, validation: int = 300, test: int = 100,
                 seed: int = 7, lexicon_seed: int = DEFAULT_LEXICON_SEED,
                 raw: bool = False) -> Dict[str, Tuple[str, str]]:
    """Write `{split}.src` / `{split}.trg` for train, val and test; returns split -> (source, target) paths.

    The test sentences are drawn so that none of them also occurs in train (the demo measures
    translation of unseen sentences). Files are written atomically. `raw`: sentences as raw text
    (capitalised, full stop attached, see `raw_sentence`) instead of lower-case tokens.
    """
    lexicon = make_lexicon(lexicon_seed)
    os.makedirs(output_dir, exist_ok=True)
    sizes = split_sizes(train, validation, test)
    pairs = generate_pairs(sum(sizes.values()) * 2, seed, lexicon)
    splits, seen, cursor = {}, set(), 0
    for name in SPLIT_NAMES:
        chosen = []
        while len(chosen) < sizes[name]:
            if cursor >= len(pairs):
                pairs += generate_pairs(len(pairs), seed + cursor, lexicon)
            source, target = pairs[cursor]
            cursor += 1
            key = " ".join(source)
            if name != "train" and key in seen:
                continue
            seen.add(key)
            chosen.append((source, target))
        splits[name] = chosen
    paths = {}
    for name, chosen in splits.items():
        source_path = os.path.join(output_dir, f"{name}.src")
        target_path = os.path.join(output_dir, f"{name}.trg")
        render = raw_sentence if raw else " ".join
        _write_lines(source_path, (render(s) for s, _ in chosen))
        _write_lines(target_path, (render(t) for _, t in chosen))
        paths[name] = (source_path, target_path)
    return paths


def _write_lines(path: str, lines) -> None:
    with atomic_output(path) as stream:
        for line in lines:
            stream.write((line + "\n").encode("utf-8"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="directory for {train,val,test}.{src,trg}")
    parser.add_argument("--train", type=int, default=8000, help="training pairs (default 8000)")
    parser.add_argument("--validation", type=int, default=300, help="validation pairs (default 300)")
    parser.add_argument("--test", type=int, default=100, help="test pairs (default 100)")
    parser.add_argument("--seed", type=int, default=7, help="sentence sampling seed (default 7)")
    parser.add_argument("--raw", action="store_true", help="raw text (capitalised, full stop) instead of tokens")
    args = parser.parse_args(argv)
    for name, (source, target) in write_corpus(args.output, args.train, args.validation, args.test,
                                               args.seed, raw=args.raw).items():
        print(f"{name}: {source} {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
