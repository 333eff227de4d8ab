"""Validation metrics: perplexity and accuracy (teacher forced) and BLEU (beam search, sacreBLEU)."""

import math
from typing import List

import sacrebleu
import sacrebleu.metrics

from ..data.batch_iterator import BucketBatchIterator, IteratorPosition
from .loss import MaskedCrossEntropy


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
