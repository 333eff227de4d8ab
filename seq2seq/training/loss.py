"""Masked, label-smoothed cross-entropy over padded target batches."""

from mxnet.gluon import HybridBlock

from ..constants import PAD_ID


class MaskedCrossEntropy(HybridBlock):
    """Sums the loss over non-padding target positions.

    logits `(batch, trg_len, vocab)`, labels `(batch, trg_len)` with PAD_ID at padded positions (or logits
    `(tokens, vocab)` and labels `(tokens,)` of gathered positions).
    Returns (smoothed loss sum, negative log-likelihood sum, correct-prediction count), each `(1,)`:
    the caller divides by the number of target tokens so that the gradient does not depend on the device split.
    With smoothing ε the per-token loss is (1-ε)·NLL + ε·mean over the vocabulary of -log p.
    """

    def __init__(self, label_smoothing: float = 0.0, with_accuracy: bool = True, **kwargs):
        super().__init__(**kwargs)
        self._smoothing = label_smoothing
        self._with_accuracy = with_accuracy

    def hybrid_forward(self, F, logits, labels):
        log_probs = F.log_softmax(logits, axis=-1)
        mask = labels != PAD_ID
        nll = -F.pick(log_probs, labels, axis=-1) * mask
        loss = nll
        if self._smoothing > 0:
            uniform = -F.mean(log_probs, axis=-1) * mask
            loss = (1.0 - self._smoothing) * nll + self._smoothing * uniform
        if not self._with_accuracy:  # the arg-max over the vocabulary is not free: training skips it
            return F.sum(loss).reshape((1,)), F.sum(nll).reshape((1,)), F.zeros((1,))
        correct = (F.argmax(logits, axis=-1) == labels) * mask
        return F.sum(loss).reshape((1,)), F.sum(nll).reshape((1,)), F.sum(correct).reshape((1,))
