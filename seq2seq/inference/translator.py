"""Translates id sequences or sentences with a trained model, in length-sorted batches.

Sentences are whitespace tokens for a word-level model, raw text for a model directory with subword models
(subword.src.model / subword.trg.model): then translations carry the detokenised text and the source pieces.
"""

import math
from dataclasses import dataclass, replace
from typing import Callable, List, Optional

import mxnet as mx
import numpy as np

from ..data.subword import SubwordModels, load_checked_subword_models
from ..data.vocab import Vocabulary
from ..model.config import ModelConfig
from ..model.seq2seq_model import Seq2SeqModel
from ..model_dir import load_model, load_shortlist
from .search import SearchOptions, beam_search
from .shortlist import Shortlist

DEFAULT_BATCH_SENTENCES = 32


@dataclass(frozen=True)
class DecodeOptions:
    """Search settings. max_output_length None: derived from the source length; always capped by the model's
    max_seq_len_target."""

    beam_size: int = 5
    length_penalty_alpha: float = 1.0
    length_penalty_beta: float = 0.0
    max_output_length: Optional[int] = None
    attention_matrix: bool = False
    shortlist: bool = True              # score only the model's shortlist (when it has one)
    block_ngram_repeat: int = 0         # > 0: no n-gram of this size twice in a translation
    coverage_penalty: float = 0.0       # > 0: GNMT's coverage penalty weight

    @property
    def search_options(self) -> SearchOptions:
        return SearchOptions(self.block_ngram_repeat, self.coverage_penalty)


@dataclass(frozen=True)
class Translation:
    target_ids: List[int]
    target_tokens: List[str]             # vocabulary tokens: words, or subword pieces
    score: float
    attention: Optional[np.ndarray]      # (len(target_ids), source_len) when requested
    source_truncated: bool
    source_tokens: Optional[List[str]] = None   # subword models: the source pieces the model saw (truncated)
    target_text: Optional[str] = None           # subword models: the detokenised translation

    @property
    def text(self) -> str:
        """The translation as text: detokenised with subword models, else the tokens joined by spaces."""
        return self.target_text if self.target_text is not None else " ".join(self.target_tokens)


def max_output_length(config: ModelConfig, source_length: int, requested: Optional[int] = None) -> int:
    """Output bound in tokens, </s> included: source length × (mean + 2 std of the training length ratio) + 2,
    at most max_seq_len_target + 1 (or `requested` + 1 when given)."""
    cap = config.max_seq_len_target if requested is None else min(requested, config.max_seq_len_target)
    derived = int(math.ceil(source_length * (config.length_ratio_mean + 2 * config.length_ratio_std))) + 2
    return max(1, min(cap, derived if requested is None else cap)) + 1


def length_sorted_batches(sources: List[List[int]], batch_sentences: int) -> List[List[int]]:
    """How `Translator` batches: the indices of the non-empty `sources`, shortest first, cut into lists of at
    most `batch_sentences`."""
    order = sorted((i for i, s in enumerate(sources) if len(s)), key=lambda i: len(sources[i]))
    return [order[start:start + batch_sentences] for start in range(0, len(order), batch_sentences)]


class Translator:
    """Owns a loaded model and its vocabularies; thread-compatible, not thread-safe (serialize calls)."""

    def __init__(self, model: Seq2SeqModel, source_vocab: Vocabulary, target_vocab: Vocabulary,
                 default_options: DecodeOptions = DecodeOptions(), context=None,
                 batch_sentences: int = DEFAULT_BATCH_SENTENCES, subword: Optional[SubwordModels] = None,
                 search: Callable = beam_search, shortlist: Optional[Shortlist] = None):
        self.model = model
        self.search = search            # beam_search's signature; the decoding benchmark passes its reference
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.subword = subword          # None: word-level model (whitespace tokens in and out)
        self.shortlist = shortlist      # None: the whole vocabulary is scored
        self.default_options = default_options
        self.context = context or mx.cpu()
        self.batch_sentences = batch_sentences

    @property
    def max_seq_len_source(self) -> int:
        return self.model.config.max_seq_len_source

    @classmethod
    def load(cls, model_dir: str, context=None) -> "Translator":
        context = context or mx.cpu()
        model, source_vocab, target_vocab, config = load_model(model_dir, context)
        model.fix_parameters()           # this translator's own model: its parameters never change
        defaults = DecodeOptions(beam_size=int(config.get("beam_size", 5)),
                                 length_penalty_alpha=float(config.get("length_penalty_alpha", 1.0)),
                                 length_penalty_beta=float(config.get("length_penalty_beta", 0.0)))
        subword = load_checked_subword_models(model_dir, source_vocab, target_vocab)
        shortlist = load_shortlist(model_dir, len(source_vocab), len(target_vocab))
        return cls(model, source_vocab, target_vocab, defaults, context, subword=subword, shortlist=shortlist)

    def translate_text(self, sentences: List[str], options: DecodeOptions = None) -> List[Translation]:
        """Translate sentences: whitespace tokens (word-level model) or raw text (subword model, whose
        translations carry `target_text` and `source_tokens`). Empty sentences give empty translations."""
        if self.subword is None:
            return self.translate_ids([self.source_vocab.encode(s.split()) for s in sentences], options)
        encoded = [self.subword.source.encode_text(sentence) for sentence in sentences]
        translations = self.translate_ids([ids for ids, _ in encoded], options)
        return [self.with_text(translation, pieces) for translation, (_, pieces) in zip(translations, encoded)]

    def with_text(self, translation: Translation, source_pieces: List[str]) -> Translation:
        """`translation` with the detokenised target text and the source pieces (cut as the model cut them)."""
        return replace(translation, source_tokens=list(source_pieces[:self.max_seq_len_source]),
                       target_text=self.subword.target.decode(translation.target_ids))

    def translate_ids(self, sources: List[List[int]], options: DecodeOptions = None) -> List[Translation]:
        """Translate id sequences; the result keeps the input order. Empty sources give empty translations."""
        options = options or self.default_options
        results: List[Optional[Translation]] = [None] * len(sources)
        limit = self.max_seq_len_source
        for chunk in length_sorted_batches(sources, self.batch_sentences):
            truncated = [list(sources[i][:limit]) for i in chunk]
            for index, translation in zip(chunk, self._translate_batch(truncated, options)):
                results[index] = replace(translation, source_truncated=len(sources[index]) > limit)
        for index, source in enumerate(sources):
            if results[index] is None:
                empty_attention = np.zeros((0, 0), dtype=np.float32) if options.attention_matrix else None
                results[index] = Translation([], [], 0.0, empty_attention, False)
        return results

    def _translate_batch(self, sources: List[List[int]], options: DecodeOptions) -> List[Translation]:
        lengths = [len(s) for s in sources]
        padded = np.zeros((len(sources), max(lengths)), dtype=np.float32)
        for row, source in enumerate(sources):
            padded[row, :len(source)] = source
        max_lengths = np.array([max_output_length(self.model.config, n, options.max_output_length) for n in lengths])
        candidate_ids = self.shortlist.candidates(sources) \
            if options.shortlist and self.shortlist is not None else None
        hypotheses = self.search(self.model, mx.nd.array(padded, ctx=self.context),
                                 mx.nd.array(lengths, ctx=self.context), max_lengths, options.beam_size,
                                 options.length_penalty_alpha, options.length_penalty_beta,
                                 options.attention_matrix, candidate_ids, options.search_options)
        translations = []
        for hypothesis, length in zip(hypotheses, lengths):
            attention = hypothesis.attention[:, :length] if hypothesis.attention is not None else None
            translations.append(Translation(hypothesis.token_ids, self.target_vocab.decode(hypothesis.token_ids),
                                            hypothesis.score, attention, False))
        return translations
