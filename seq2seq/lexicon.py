"""A lexical translation table p(target id | source id) from the training id pairs: IBM Model 1, in numpy.

Model 1 (Brown et al. 1993) explains each target token by one source token of its sentence or by NULL:
p(e | f) is learnt by expectation-maximisation. E-step: each target token's alignment posterior over its
sentence's source tokens (and NULL) is t(e | f_j) / Σ_j' t(e | f_j'); M-step: t(e | f) = expected count(f, e) /
Σ_e' expected count(f, e'). The table lives only on the (source, target) id pairs that co-occur in a sentence
(sparse, about Σ |f|·|e| entries before deduplication); the first E-step from a uniform table is plain
co-occurrence, the later ones sharpen it toward the true translations (frequent target tokens stop winning
every row).

Used for the decoding shortlist: `shortlist_from_pairs` keeps each source id's best target ids. As a command,
it adds a shortlist to a model directory trained without one:

    python -m seq2seq.lexicon --model DIR --train train.rec [--k K] [--frequent N]
"""

import argparse
import logging
import sys
import time
from dataclasses import dataclass

import numpy as np

from .constants import PAD_ID
from .inference.shortlist import Shortlist, target_frequency_order

logger = logging.getLogger(__name__)

NULL = PAD_ID                 # the source id that stands for NULL (PAD never occurs in a sentence)
MAX_TOKEN_PAIRS = 20_000_000  # sentences are sampled down to about this many (source, target) token pairs


@dataclass(frozen=True)
class LexicalTable:
    """Sparse t(e | f): `source_ids`, `target_ids`, `probabilities`, each `(entries,)`, sorted by source id."""

    source_ids: np.ndarray
    target_ids: np.ndarray
    probabilities: np.ndarray

    def top_translations(self, source_vocab_size: int, k: int) -> np.ndarray:
        """`(source_vocab_size, k)` int32: each source id's k most probable target ids, best first; rows with
        fewer than k entries are filled with PAD_ID (never emitted)."""
        order = np.lexsort((-self.probabilities, self.source_ids))        # by source, then best first
        sources, targets = self.source_ids[order], self.target_ids[order]
        starts = np.searchsorted(sources, np.arange(source_vocab_size))
        rank = np.arange(len(sources)) - starts[sources]
        keep = rank < k
        table = np.full((source_vocab_size, k), PAD_ID, dtype=np.int32)
        table[sources[keep], rank[keep]] = targets[keep]
        return table


def _sentence_pairs(sources, targets, rng: np.random.RandomState):
    """Flat (source id, target id, target token number) over every token pair of every sentence, NULL added to
    each source side; sentences sampled down to about MAX_TOKEN_PAIRS pairs."""
    source_lengths = np.fromiter((len(s) + 1 for s in sources), dtype=np.int64, count=len(sources))
    target_lengths = np.fromiter((len(t) for t in targets), dtype=np.int64, count=len(targets))
    sizes = source_lengths * target_lengths
    chosen = np.arange(len(sources))
    if sizes.sum() > MAX_TOKEN_PAIRS:
        chosen = np.sort(rng.choice(len(sources), int(len(sources) * MAX_TOKEN_PAIRS / sizes.sum()), replace=False))
    source_parts, target_parts, token_parts = [], [], []
    token_offset = 0
    for i in chosen:
        f = np.concatenate([[NULL], np.asarray(sources[i], dtype=np.int64)])
        e = np.asarray(targets[i], dtype=np.int64)
        source_parts.append(np.tile(f, len(e)))
        target_parts.append(np.repeat(e, len(f)))
        token_parts.append(np.repeat(np.arange(token_offset, token_offset + len(e)), len(f)))
        token_offset += len(e)
    if not source_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, 0
    return (np.concatenate(source_parts), np.concatenate(target_parts), np.concatenate(token_parts),
            token_offset)


def estimate_lexical_table(sources, targets, source_vocab_size: int, target_vocab_size: int,
                           iterations: int = 5, seed: int = 0) -> LexicalTable:
    """IBM Model 1 t(e | f) from parallel id sequences (lists of int arrays, no <s>/</s>). `iterations` EM passes."""
    source, target, token, num_tokens = _sentence_pairs(sources, targets, np.random.RandomState(seed))
    keys, pair_entry = np.unique(source * target_vocab_size + target, return_inverse=True)
    entry_source, entry_target = keys // target_vocab_size, keys % target_vocab_size
    t = np.ones(len(keys), dtype=np.float64)
    for _ in range(iterations):
        weights = t[pair_entry]
        per_token = np.bincount(token, weights=weights, minlength=num_tokens)
        counts = np.bincount(pair_entry, weights=weights / per_token[token], minlength=len(keys))
        per_source = np.bincount(entry_source, weights=counts, minlength=source_vocab_size)
        t = counts / per_source[entry_source]
    keep = entry_source != NULL
    logger.info("lexical table: %d source-target entries from %d token pairs, %d EM iterations",
                int(keep.sum()), len(source), iterations)
    return LexicalTable(entry_source[keep].astype(np.int32), entry_target[keep].astype(np.int32),
                        t[keep].astype(np.float32))


def shortlist_from_pairs(sources, targets, source_vocab_size: int, target_vocab_size: int, k: int,
                         frequent: int) -> Shortlist:
    """The decoding shortlist of parallel id sequences: Model 1's k best translations of each source id and the
    target ids by frequency (the first `frequent` always scored)."""
    start = time.time()
    table = estimate_lexical_table(sources, targets, source_vocab_size, target_vocab_size)
    shortlist = Shortlist(table.top_translations(source_vocab_size, k),
                          target_frequency_order(targets, target_vocab_size), k, frequent)
    logger.info("decoding shortlist: %d translations per source token, %d frequent target tokens (%.1f s)",
                k, frequent, time.time() - start)
    return shortlist


def main(argv=None) -> int:
    from .data.recordio_codec import read_pairs
    from .errors import UserError
    from .hyperparameters import Hyperparameters
    from .model_dir import read_model_config, write_shortlist

    parser = argparse.ArgumentParser(prog="python -m seq2seq.lexicon",
                                     description="Add a decoding shortlist to a trained model directory.")
    parser.add_argument("--model", required=True, help="the model directory")
    parser.add_argument("--train", required=True, help="the training pairs (train.rec) the model was trained on")
    defaults = Hyperparameters()
    parser.add_argument("--k", type=int, default=defaults.shortlist_k, help="translations per source token "
                        "(default: the shortlist_k hyperparameter's)")
    parser.add_argument("--frequent", type=int, default=defaults.shortlist_frequent,
                        help="most frequent target tokens always scored (default: shortlist_frequent's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config, _ = read_model_config(args.model)
        pairs = list(read_pairs(args.train))
        for side, index, size in (("source", 0, config.source_vocab_size), ("target", 1, config.target_vocab_size)):
            largest = max((int(p[index].max()) for p in pairs if len(p[index])), default=0)
            if largest >= size:
                raise UserError(f"{args.train}: {side} id {largest} is outside the model's {side} vocabulary "
                                f"({size} ids): not the data this model was trained on")
        shortlist = shortlist_from_pairs([p[0] for p in pairs], [p[1] for p in pairs], config.source_vocab_size,
                                         config.target_vocab_size, args.k, args.frequent)
        write_shortlist(args.model, shortlist)
    except UserError as error:
        print(f"lexicon: {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
