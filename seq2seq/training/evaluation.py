"""Validation metrics: perplexity and accuracy (teacher forced) and BLEU (beam search, sacreBLEU)."""

import math
from typing import List

import mxnet as mx
import sacrebleu

from ..data.batch_iterator import BucketBatchIterator, IteratorPosition
from ..inference.translator import DecodeOptions, Translator
from .loss import MaskedCrossEntropy


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
    tokens = max(tokens, 1)
    return {"perplexity": math.exp(min(nll_sum / tokens, 50.0)), "accuracy": correct_sum / tokens}


def corpus_bleu(hypotheses: List[str], references: List[str]) -> float:
    """sacreBLEU on already tokenized text (tokenize='none')."""
    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score


def sample_bleu(translator: Translator, sources: List[List[int]], references: List[List[int]],
                options: DecodeOptions) -> float:
    """BLEU of the beam-search translations of `sources` against the reference id sequences."""
    translations = translator.translate_ids(sources, options)
    hypotheses = [" ".join(t.target_tokens) for t in translations]
    reference_text = [" ".join(translator.target_vocab.decode(list(r))) for r in references]
    return corpus_bleu(hypotheses, reference_text)


def bleu_sample(num_sentences: int, total: int) -> range:
    """Indices of the validation sentences used for BLEU: the first N (-1 = all)."""
    return range(total if num_sentences < 0 else min(num_sentences, total))
