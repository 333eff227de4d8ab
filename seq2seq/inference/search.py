"""Greedy and batched beam search over a model's `encode` / `decode_step`. Nothing here knows the architecture."""

from dataclasses import dataclass
from typing import List, Optional

import mxnet as mx
import numpy as np

from ..constants import BOS_ID, EOS_ID, PAD_ID

_NEG_INF = -1e30


@dataclass
class Hypothesis:
    """One decoded sentence. token_ids exclude </s>; attention `(len(token_ids), src_len)` or None."""

    token_ids: List[int]
    score: float
    attention: Optional[np.ndarray]


def length_penalty(length: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """((beta + length) / (beta + 1)) ** alpha; 1 when alpha is 0."""
    if alpha == 0.0:
        return np.ones_like(length, dtype=np.float64)
    return ((beta + length) / (beta + 1.0)) ** alpha


def beam_search(model, source: mx.nd.NDArray, source_length: mx.nd.NDArray, max_output_lengths: np.ndarray,
                beam_size: int = 5, alpha: float = 1.0, beta: float = 0.0,
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
    return [_backtrack(row, tokens_per_step, pointers_per_step, attention_per_step, float(final_scores[row]))
            for row in best_rows]


def greedy_search(model, source, source_length, max_output_lengths, return_attention=False) -> List[Hypothesis]:
    """Arg-max decoding; the same as `beam_search` with beam size 1 and no length penalty."""
    return beam_search(model, source, source_length, max_output_lengths, beam_size=1, alpha=0.0,
                       return_attention=return_attention)


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


def _backtrack(row: int, tokens_per_step, pointers_per_step, attention_per_step, score: float) -> Hypothesis:
    token_ids, attention_rows = [], []
    for step in range(len(tokens_per_step) - 1, -1, -1):
        token_ids.append(int(tokens_per_step[step][row]))
        if attention_per_step:
            attention_rows.append(attention_per_step[step][row])
        row = int(pointers_per_step[step][row])
    token_ids.reverse()
    attention_rows.reverse()
    keep = [i for i, t in enumerate(token_ids) if t not in (PAD_ID, EOS_ID)]
    attention = np.stack([attention_rows[i] for i in keep]) if attention_per_step and keep else None
    if attention_per_step and not keep:
        attention = np.zeros((0, attention_per_step[0].shape[1]), dtype=np.float32)
    return Hypothesis([token_ids[i] for i in keep], score, attention)
