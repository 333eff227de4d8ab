"""The step-by-step beam search the project used before the one-program step: about twenty imperative MXNet
calls and several host synchronisations per step. Kept as the reference that the decoding benchmark and the
tests compare the current search with (same outputs, speed ratio)."""

from typing import List

import mxnet as mx
import numpy as np

from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID
from seq2seq.inference.search import Hypothesis, backtrack, length_penalty

_NEG_INF = -1e30


def reference_beam_search(model, source: mx.nd.NDArray, source_length: mx.nd.NDArray,
                          max_output_lengths: np.ndarray, beam_size: int = 5, alpha: float = 1.0, beta: float = 0.0,
                          return_attention: bool = False) -> List[Hypothesis]:
    """Decode a batch. source `(batch, src_len)`, source_length `(batch,)`, max_output_lengths `(batch,)` ints
    (</s> included). Scores are summed log-probabilities divided by the length penalty of the output length
    (</s> included). beam_size 1 is exactly greedy search."""
    ctx = source.context
    batch, k = source.shape[0], beam_size
    encoded, states = model.encode(source, source_length)
    encoded = type(encoded)(*(mx.nd.repeat(a, k, axis=0) for a in encoded))
    states = [mx.nd.repeat(s, k, axis=0) for s in states]
    rows = batch * k
    initial = np.full((batch, k), _NEG_INF, dtype=np.float32)
    initial[:, 0] = 0.0
    scores = mx.nd.array(initial.reshape(rows, 1), ctx=ctx)
    finished = np.zeros(rows, dtype=bool)
    lengths = np.zeros(rows, dtype=np.int64)
    max_lengths = np.repeat(np.asarray(max_output_lengths, dtype=np.int64), k)
    previous = mx.nd.full((rows,), BOS_ID, ctx=ctx)
    base = np.repeat(np.arange(batch) * k, k)
    tokens_per_step, pointers_per_step, attention_per_step = [], [], []
    for step in range(int(max_lengths.max())):
        logits, attention, states = model.decode_step(previous, states, encoded)
        log_probs = mx.nd.log_softmax(logits, axis=-1)
        for never_emitted in (PAD_ID, BOS_ID):  # an untrained model may favour them; they are no output
            log_probs[:, never_emitted] = _NEG_INF
        log_probs = _constrain(log_probs, finished, step >= max_lengths - 1, ctx)
        candidates = (scores + log_probs).reshape((batch, -1))
        top_scores, top_index = mx.nd.topk(candidates, axis=1, k=k, ret_typ="both", dtype="int64")
        top_index = top_index.asnumpy().reshape(-1)
        vocab = log_probs.shape[1]
        origin = base + top_index // vocab
        tokens = top_index % vocab
        origin_nd = mx.nd.array(origin, ctx=ctx, dtype="int64")
        states = [mx.nd.take(s, origin_nd) for s in states]
        scores = top_scores.reshape((rows, 1))
        was_finished = finished[origin]
        lengths = lengths[origin] + (~was_finished)
        finished = was_finished | (tokens == EOS_ID)
        tokens_per_step.append(np.where(was_finished, PAD_ID, tokens))
        pointers_per_step.append(origin)
        if return_attention:
            attention_per_step.append(mx.nd.take(attention, origin_nd).asnumpy())
        if finished.all():
            break
        previous = mx.nd.array(tokens, ctx=ctx)
    final_scores = scores.asnumpy().reshape(-1) / length_penalty(lengths, alpha, beta)
    best_rows = np.arange(batch) * k + final_scores.reshape(batch, k).argmax(axis=1)
    return [backtrack(row, tokens_per_step, pointers_per_step, attention_per_step or None,
                      float(final_scores[row])) for row in best_rows]


def _constrain(log_probs: mx.nd.NDArray, finished: np.ndarray, at_limit: np.ndarray, ctx) -> mx.nd.NDArray:
    """Finished rows may only emit PAD at no cost; rows at their length limit must emit </s> (at the model's own
    </s> log-probability, so that their scores stay comparable). log_probs `(rows, vocab)`."""
    if not finished.any() and not at_limit.any():
        return log_probs
    eos_only = at_limit & ~finished
    keep = mx.nd.array((~(finished | at_limit)).astype(np.float32).reshape(-1, 1), ctx=ctx)
    constrained = mx.nd.broadcast_mul(log_probs, keep) + mx.nd.broadcast_mul(1.0 - keep, mx.nd.full((1, 1), _NEG_INF,
                                                                                                     ctx=ctx))
    finished_nd = mx.nd.array(finished.astype(np.float32), ctx=ctx)
    eos_only_nd = mx.nd.array(eos_only.astype(np.float32), ctx=ctx)
    constrained[:, PAD_ID] = mx.nd.where(finished_nd, mx.nd.zeros_like(finished_nd), constrained[:, PAD_ID])
    constrained[:, EOS_ID] = mx.nd.where(eos_only_nd, log_probs[:, EOS_ID], constrained[:, EOS_ID])
    return constrained
