"""Masked, label-smoothed cross-entropy over padded target batches."""

import mxnet as mx
import numpy as np
from mxnet.gluon import Block

from ..constants import PAD_ID


class MaskedCrossEntropy(Block):
    """Sums the loss over non-padding target positions.

    logits `(batch, trg_len, vocab)`, labels `(batch, trg_len)` with PAD_ID at padded positions (or logits
    `(tokens, vocab)` and labels `(tokens,)` of gathered positions).
    Returns (smoothed loss sum, negative log-likelihood sum, correct-prediction count), each `(1,)`:
    the caller divides by the number of target tokens so that the gradient does not depend on the device split.
    With smoothing ε the target distribution gives the gold word 1 − ε and every other word ε / (vocab − 1),
    exactly as `fused_softmax_loss` does. float16 logits (AMP) are computed on in float32.
    """

    def __init__(self, label_smoothing: float = 0.0, with_accuracy: bool = True, **kwargs):
        super().__init__(**kwargs)
        self._smoothing = label_smoothing
        self._with_accuracy = with_accuracy

    def forward(self, logits, labels):
        F = mx.nd
        # float32 whatever the logits' type (AMP computes log_softmax in float32 anyway): the arg-max of float16
        # logits returns float16 ids, which are exact only up to 2,048
        if logits.dtype != np.float32:
            logits = F.cast(logits, dtype="float32")
        log_probs = F.log_softmax(logits, axis=-1)
        mask = labels != PAD_ID
        nll = -F.pick(log_probs, labels, axis=-1) * mask
        loss = nll
        if self._smoothing > 0:
            others = (-F.sum(log_probs, axis=-1) * mask - nll) / (logits.shape[-1] - 1)
            loss = (1.0 - self._smoothing) * nll + self._smoothing * others
        if not self._with_accuracy:  # the arg-max over the vocabulary is not free: training skips it
            return F.sum(loss).reshape((1,)), F.sum(nll).reshape((1,)), F.zeros((1,))
        correct = (F.argmax(logits, axis=-1) == labels) * mask
        return F.sum(loss).reshape((1,)), F.sum(nll).reshape((1,)), F.sum(correct).reshape((1,))


def fused_softmax_loss(logits, labels, label_smoothing: float, grad_scale: float):
    """Training loss for gathered, non-padding positions in one fused softmax operator.

    logits `(tokens, vocab)`, labels `(tokens,)`. Returns (head, nll_sum): call backward on `head`; its gradient is
    grad_scale × (softmax − smoothed one-hot), where the gold label gets 1 − ε and every other label ε / (vocab − 1).
    nll_sum `(1,)` is the unsmoothed negative log-likelihood, for logging only (no gradient). This replaces the
    separate log-softmax, pick and mean passes over `(tokens, vocab)` of `MaskedCrossEntropy` and their backward.
    """
    probabilities = mx.nd.SoftmaxOutput(logits, labels, grad_scale=grad_scale, smooth_alpha=label_smoothing,
                                        normalization="null")
    gold = mx.nd.pick(probabilities.detach(), labels, axis=-1)
    nll_sum = -mx.nd.sum(mx.nd.log(mx.nd.maximum(gold, 1e-30))).reshape((1,))
    return probabilities, nll_sum
