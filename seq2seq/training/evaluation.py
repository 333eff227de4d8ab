"""Validation metrics: perplexity and accuracy (teacher forced) and BLEU (beam search, sacreBLEU)."""

import math
from typing import Callable, List, NamedTuple, Optional

import sacrebleu
import sacrebleu.metrics

from ..data.batch_iterator import BucketBatchIterator, IteratorPosition
from ..data.dataset import ParallelData
from ..data.subword import SubwordModels
from ..data.vocab import Vocabulary
from ..inference.shortlist import Shortlist
from ..inference.translator import DecodeOptions, Translator
from .loss import MaskedCrossEntropy

BLEU_CHUNK_SENTENCES = 128


def perplexity(nll_sum: float, num_tokens: int) -> float:
    """exp(mean token NLL), at most exp(50) (a diverging model gives a large finite number); 1 for no tokens."""
    return math.exp(min(nll_sum / max(1, num_tokens), 50.0))


def perplexity_and_accuracy(model, iterator: BucketBatchIterator, ctx) -> dict:
    """Token-level perplexity and accuracy over every validation batch (dropout off, no label smoothing)."""
    loss = MaskedCrossEntropy(0.0)
    nll_sum, correct_sum, tokens = 0.0, 0.0, 0
    for batch in iterator.epoch(IteratorPosition()):
        loaded = batch.load(ctx)
        _, nll, correct = loss(loaded.valid_logits(model), loaded.valid_labels)
        nll_sum += nll.asscalar()
        correct_sum += correct.asscalar()
        tokens += batch.num_target_tokens
    return {"perplexity": perplexity(nll_sum, tokens), "accuracy": correct_sum / max(tokens, 1)}


class BleuScore(float):
    """A BLEU score that knows how it was computed: `signature` is sacreBLEU's (e.g. "...|tok:13a|...")."""

    def __new__(cls, value: float, signature: str):
        score = super().__new__(cls, value)
        score.signature = signature
        return score

    def __reduce__(self):          # copy, deepcopy and pickle keep the signature
        return BleuScore, (float(self), self.signature)


def corpus_bleu(hypotheses: List[str], references: List[str]) -> float:
    """sacreBLEU on already tokenized text (tokenize='none')."""
    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score


def detokenised_bleu(hypotheses: List[str], references: List[str]) -> BleuScore:
    """sacreBLEU with its standard settings (cased, 13a tokenisation) on detokenised text."""
    metric = sacrebleu.metrics.BLEU()
    score = metric.corpus_score(hypotheses, [references])
    return BleuScore(score.score, str(metric.get_signature()))


def bleu_sample(num_sentences: int, total: int) -> range:
    """Indices of the validation sentences used for BLEU: the first N (-1 = all)."""
    return range(total if num_sentences < 0 else min(num_sentences, total))


class ValidationDecoding(NamedTuple):
    """What decoding the validation sample measured: BLEU, and the share of the (full) search's output tokens
    that the shortlist's candidates for each sentence alone hold, as a one-sentence request is decoded (None
    without a shortlist)."""

    bleu: float
    shortlist_coverage: Optional[float]


def validation_bleu(model, data: ParallelData, source_vocab: Vocabulary, target_vocab: Vocabulary, context,
                    options: DecodeOptions, sample_size: int, subword: Optional[SubwordModels] = None,
                    should_stop: Callable[[], bool] = lambda: False,
                    shortlist: Optional[Shortlist] = None) -> Optional[ValidationDecoding]:
    """Beam-search BLEU of `model` on the first `sample_size` validation sentences (-1: all), decoded in chunks of
    BLEU_CHUNK_SENTENCES on `context` over the whole vocabulary; None when `should_stop()` turns true between
    chunks. With `shortlist`, also its coverage of those translations (`Shortlist.coverage`).

    Word-level models: sacreBLEU on the tokens as they are (tokenize='none'). With subword models: hypotheses
    and references detokenised, sacreBLEU's standard settings (cased, 13a); the score carries its signature,
    which the metric line and files show.
    """
    indices = list(bleu_sample(sample_size, len(data)))
    translator = Translator(model, source_vocab, target_vocab, context=context, subword=subword)
    hypotheses, references, output_ids = [], [], []
    for start in range(0, len(indices), BLEU_CHUNK_SENTENCES):
        if should_stop():
            return None
        chunk = indices[start:start + BLEU_CHUNK_SENTENCES]
        translations = translator.translate_ids([list(data.sources[i]) for i in chunk], options)
        output_ids += [t.target_ids for t in translations]
        if subword is None:
            hypotheses += [" ".join(t.target_tokens) for t in translations]
            references += [" ".join(target_vocab.decode(list(data.targets[i]))) for i in chunk]
        else:
            hypotheses += [subword.target.decode(t.target_ids) for t in translations]
            references += [subword.target.decode(data.targets[i]) for i in chunk]
    bleu = corpus_bleu(hypotheses, references) if subword is None else detokenised_bleu(hypotheses, references)
    coverage = None if shortlist is None else shortlist.coverage([list(data.sources[i]) for i in indices],
                                                                 output_ids)
    return ValidationDecoding(bleu, coverage)
