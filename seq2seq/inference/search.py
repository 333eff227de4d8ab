"""Greedy and batched beam search over a model's `encode` / `decode_step`. Nothing here knows the architecture.

A step is one program call and one host synchronisation. The program (`BeamStep` for a `Seq2SeqModel`) reorders
the decoder states by the previous step's back-pointers, runs the decoder step, projects onto the candidate
rows of the output layer (the whole vocabulary, or a per-batch shortlist), takes the log-softmax and keeps
each row's `beam` best candidates. With a shortlist the log-softmax still normalises over the whole vocabulary:
the logits of the ids not scored are estimated from a low-rank factorisation of the output layer
(`shortlist_log_probs`); normalising over the candidates alone inflated uncertain steps and cost 0.34 BLEU.
The host reads those `(rows, 2 × beam + 1)` numbers (the one synchronisation) and does the rest in numpy on a few
dozen values: finished and length-limit rules, the top-k over `beam × beam` candidates per sentence, n-gram
blocking, coverage. The global top-k over `beam × vocab`
is always among the rows' own top `beam`, so this is the same search as a top-k over the whole block.

Any other object with `encode` and `decode_step` (test models) gets the same selection, with the row top-k
computed by imperative calls on its logits.
"""

from dataclasses import dataclass
from typing import Callable, List, Optional

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from ..constants import BOS_ID, EOS_ID, PAD_ID
from ..model.programs import InferenceProgram

_NEG_INF = -1e30
RESERVED_IDS = (PAD_ID, 1, BOS_ID, EOS_ID)     # candidate position == id for these in every candidate list
# Rank of the output layer's factors that estimate the logits of the ids a shortlist does not score, for the
# normalisation. On the 30-minute Multi30k model (hidden 512), the error of log Z on the full search's steps:
# without the estimate (normalised over the candidates only) mean 0.205, p90 0.47; rank 32 |error| p90 0.086;
# rank 64 |error| p90 0.035, mean -0.015.
REST_RANK = 64


@dataclass
class Hypothesis:
    """One decoded sentence. token_ids exclude </s>; attention `(len(token_ids), src_len)` or None."""

    token_ids: List[int]
    score: float
    attention: Optional[np.ndarray]


@dataclass(frozen=True)
class SearchOptions:
    """Search settings beyond beam size and length penalty; all off by default.

    block_ngram_repeat: n > 0 forbids any n-gram from appearing twice in a hypothesis (OpenNMT's option).
    coverage_penalty: β > 0 adds β · Σ_i log(min(Σ_t a_ti, 1)) over the valid source positions to the final score
    (GNMT's coverage penalty, Wu et al. 2016).
    """

    block_ngram_repeat: int = 0
    coverage_penalty: float = 0.0


def length_penalty(length: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """((beta + length) / (beta + 1)) ** alpha; 1 when alpha is 0."""
    if alpha == 0.0:
        return np.ones_like(length, dtype=np.float64)
    return ((beta + length) / (beta + 1.0)) ** alpha


def row_candidates(F, log_probs, exclude, beam_size: int):
    """log_probs `(rows, candidates)`, exclude `(1 or rows, candidates)` 0 / -1e30 -> `(rows, 2 × beam + 1)`:
    each row's `beam` best log-probabilities (exclusions applied), their candidate positions (as floats), and
    the row's </s> log-probability (candidate position EOS_ID)."""
    values, positions = F.topk(F.broadcast_add(log_probs, exclude), axis=1, k=beam_size, ret_typ="both")
    eos = F.slice_axis(log_probs, axis=1, begin=EOS_ID, end=EOS_ID + 1)
    return F.concat(values, positions, eos, dim=1)


def shortlist_log_probs(F, logits, rest_logits, num_candidates: int):
    """Log-probabilities of the scored candidates `(rows, candidates)`, normalised over the whole vocabulary:
    logits `(rows, candidates)` exact, rest_logits `(rows, rest)` those of every other id (estimated). One
    log-softmax over both, of which the candidates' columns are kept (three operators)."""
    return F.slice_axis(F.log_softmax(F.concat(logits, rest_logits, dim=1), axis=-1), axis=1, begin=0,
                        end=num_candidates)


class BeamStep(InferenceProgram):
    """One search step of a model's decoder as a program; owns no parameters.

    Inputs: previous ids `(rows,)`, origin `(rows,)` the back-pointers of the last selection (the row each
    hypothesis extends), encoded and keys once per sentence `(rows / rows_per_source, src_len, ·)`,
    source_length per row `(rows,)`, output weight
    `(candidates, hidden)` and bias `(candidates,)` (the output layer's rows of the candidate ids), exclude
    `(1 or rows, candidates)`; with `num_rest` > 0 (a shortlist) then the output layer's low-rank projection
    `(rank, hidden)`, factor `(num_rest, rank)` and bias `(num_rest,)` of the ids not scored, which estimate their
    logits for the normalisation (`shortlist_log_probs`); then the decoder states of the previous step, not yet
    reordered. Returns the packed row candidates `(rows, 2 × beam + 1)` (see `row_candidates`), the attention
    `(rows, src_len)` and the new states.
    """

    def __init__(self, decoder: HybridBlock, beam_size: int, num_candidates: int, num_rest: int = 0,
                 rank: int = 0, rows_per_source: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.decoder = decoder
        self._beam_size = beam_size
        self._rows_per_source = rows_per_source
        self._num_candidates = num_candidates
        self._num_rest = num_rest
        self._rank = rank

    def hybrid_forward(self, F, previous, origin, encoded, keys, source_length, weight, bias, exclude, *inputs):
        rest, states = (inputs[:3], inputs[3:]) if self._num_rest else ((), inputs)
        states = [F.take(s, origin) for s in states]
        hidden, attention, new_states = self.decoder.step_hidden(F, previous, encoded, keys, source_length, states,
                                                                 self._rows_per_source)
        logits = F.FullyConnected(hidden, weight, bias, num_hidden=self._num_candidates)
        if self._num_rest:
            projection, rest_factor, rest_bias = rest
            reduced = F.FullyConnected(hidden, projection, no_bias=True, num_hidden=self._rank)
            rest_logits = F.FullyConnected(reduced, rest_factor, rest_bias, num_hidden=self._num_rest)
            log_probs = shortlist_log_probs(F, logits, rest_logits, self._num_candidates)
        else:
            log_probs = F.log_softmax(logits, axis=-1)
        return tuple([row_candidates(F, log_probs, exclude, self._beam_size), attention] + new_states)


def _step_function(model, beam_size: int, candidate_ids: Optional[np.ndarray], ctx, rest_rank: int = REST_RANK):
    """-> (step, per_sentence): step((previous, origin), encoded, states, exclude) returning (packed, attention,
    new states); `exclude(candidates)` gives the step's exclusion array. `per_sentence`: the step takes the encoded
    source's arrays but the last once per sentence (a step program's attention reads a beam's source once; see
    `_BeamSource`), else every array repeated per beam row (`decode_step`). With candidate ids and `rest_rank` > 0,
    log-probabilities are normalised over the whole vocabulary: exactly for models without a step program, with
    the logits of the other ids estimated through the output layer's rank-`rest_rank` factors for those with one;
    `rest_rank` 0 normalises over the candidates only (Sockeye 1.x's and Marian's shortlists)."""
    if hasattr(model, "program") and hasattr(model, "output_parameters"):
        weight, bias = model.output_parameters(ctx)
        rest = []                       # projection, factor and bias rows of the ids not scored, if any
        if candidate_ids is not None:
            rest_ids = np.setdiff1d(np.arange(weight.shape[0]), candidate_ids) if rest_rank > 0 else []
            if len(rest_ids):
                rest_ids = mx.nd.array(rest_ids, ctx=ctx, dtype="int64")
                projection, factor = model.output_factors(rest_rank, ctx)
                rest = [projection, mx.nd.take(factor, rest_ids), mx.nd.take(bias, rest_ids)]
            ids = mx.nd.array(candidate_ids, ctx=ctx, dtype="int64")
            weight, bias = mx.nd.take(weight, ids), mx.nd.take(bias, ids)
        size = weight.shape[0]
        per_row = min(beam_size, size)
        num_rest, rank = (rest[1].shape[0], rest[0].shape[0]) if rest else (0, 0)
        program = model.program(("beam", per_row, size, num_rest, rank, beam_size),
                                lambda m: BeamStep(m.decoder, per_row, size, num_rest, rank, beam_size))

        def fused_step(inputs, encoded, states, exclude):
            outputs = program(*inputs, *encoded, weight, bias, exclude(size), *rest, *states)
            return outputs[0], outputs[1], list(outputs[2:])
        return fused_step, True

    columns = None if candidate_ids is None else mx.nd.array(candidate_ids, ctx=ctx, dtype="int64")

    def generic_step(inputs, encoded, states, exclude):
        previous, origin = inputs
        states = [mx.nd.take(s, origin) for s in states]
        logits, attention, new_states = model.decode_step(previous, states, encoded)
        if columns is not None and rest_rank == 0:
            logits = mx.nd.take(logits, columns, axis=1)
        log_probs = mx.nd.log_softmax(logits, axis=-1)
        if columns is not None and rest_rank > 0:
            log_probs = mx.nd.take(log_probs, columns, axis=1)
        width = log_probs.shape[1]
        return row_candidates(mx.nd, log_probs, exclude(width), min(beam_size, width)), attention, new_states
    return generic_step, False


class _BeamSource:
    """The encoded source as a step takes it, for the sentences still decoding. `per_sentence`: every array but
    the last (the source lengths) once per sentence, the last per beam row; otherwise every array per beam row."""

    def __init__(self, encoded, beam_size: int, per_sentence: bool):
        self._per_sentence = per_sentence
        last = len(encoded) - 1
        self.arrays = type(encoded)(*(a if per_sentence and i < last else mx.nd.repeat(a, beam_size, axis=0)
                                      for i, a in enumerate(encoded)))

    def keep(self, kept_sentences: np.ndarray, kept_rows: np.ndarray) -> None:
        """Keep the sentences `kept_sentences` (positions among those still decoding, in order), whose beam rows
        are `kept_rows`."""
        ctx = self.arrays[0].context
        sentences, rows = (mx.nd.array(a, ctx=ctx, dtype="int64") for a in (kept_sentences, kept_rows))
        last = len(self.arrays) - 1
        self.arrays = type(self.arrays)(*(mx.nd.take(a, sentences if self._per_sentence and i < last else rows)
                                          for i, a in enumerate(self.arrays)))


class _Exclusions:
    """The `exclude` input of a step: -1e30 at PAD and <s> (never emitted) and, with n-gram blocking, at each
    row's blocked candidates; 0 elsewhere. `(1, candidates)` without blocking (built once), else
    `(rows, candidates)` each step. `candidate_ids` maps candidate positions to vocabulary ids."""

    def __init__(self, candidate_ids: Optional[np.ndarray], blocker: Optional["_NgramBlocker"], ctx):
        self.candidate_ids = candidate_ids
        self._blocker = blocker
        self._ctx = ctx
        self._base = None
        self._array = None
        self._position_of = None

    def for_rows(self, rows: np.ndarray) -> Callable[[int], mx.nd.NDArray]:
        """The exclusion array maker for a step over the hypothesis rows `rows` (those on the device)."""
        return lambda size: self.array(size, rows)

    def array(self, size: int, rows: np.ndarray) -> mx.nd.NDArray:
        if self._base is None:
            if self.candidate_ids is None:
                self.candidate_ids = np.arange(size)
            self._base = np.zeros((1, size), dtype=np.float32)
            self._base[0, (self.candidate_ids == PAD_ID) | (self.candidate_ids == BOS_ID)] = _NEG_INF
        if self._blocker is not None:
            if self._position_of is None:
                self._position_of = {int(t): p for p, t in enumerate(self.candidate_ids)}
            return mx.nd.array(self._blocker.exclusion(self._base, self._position_of, rows), ctx=self._ctx)
        if self._array is None:
            self._array = mx.nd.array(self._base, ctx=self._ctx)
        return self._array


class _StepInputs:
    """The step's previous ids and back-pointers as `(rows,)` float32 arrays on the search's device, refilled from
    numpy at each step: no allocation and no indexing machinery (`mx.nd.array` costs far more than the copy).
    A copy waits until its array is writable, so the previous step's program has finished reading it; the
    arrays are made again when the number of rows changes."""

    def __init__(self, ctx):
        self._ctx = ctx
        self._arrays = None

    def fill(self, previous: np.ndarray, origin: np.ndarray):
        if self._arrays is None or self._arrays[0].shape[0] != len(previous):
            self._arrays = [mx.nd.empty((len(previous),), ctx=self._ctx, dtype="float32") for _ in range(2)]
        for array, values in zip(self._arrays, (previous, origin)):
            array._sync_copyfrom(np.ascontiguousarray(values, dtype=np.float32))
        return self._arrays[0], self._arrays[1]


class _NgramBlocker:
    """Per hypothesis, the tokens that would repeat an n-gram it already holds (OpenNMT's block_ngram_repeat)."""

    def __init__(self, n: int, rows: int):
        self.n = n
        self.history: List[List[int]] = [[] for _ in range(rows)]

    def advance(self, origin: np.ndarray, emitted: np.ndarray):
        self.history = [self.history[o] + [int(t)] for o, t in zip(origin, emitted)]

    def exclusion(self, base: np.ndarray, position_of: dict, rows: np.ndarray) -> np.ndarray:
        """`(len(rows), candidates)`: `base` plus -1e30 at the blocked candidates of each of the hypothesis `rows`."""
        exclude = np.repeat(base, len(rows), axis=0)
        n = self.n
        for index, row in enumerate(rows):
            tokens = self.history[row]
            if len(tokens) < n - 1 or (tokens and tokens[-1] in (EOS_ID, PAD_ID)):
                continue
            prefix = tuple(tokens[len(tokens) - n + 1:]) if n > 1 else ()
            for start in range(len(tokens) - n + 1):
                if tuple(tokens[start:start + n - 1]) == prefix:
                    position = position_of.get(tokens[start + n - 1])
                    if position is not None:
                        exclude[index, position] = _NEG_INF
        return exclude


def beam_search(model, source: mx.nd.NDArray, source_length: mx.nd.NDArray, max_output_lengths: np.ndarray,
                beam_size: int = 5, alpha: float = 1.0, beta: float = 0.0, return_attention: bool = False,
                candidate_ids: Optional[np.ndarray] = None,
                options: SearchOptions = SearchOptions(), rest_rank: int = REST_RANK) -> List[Hypothesis]:
    """Decode a batch. source `(batch, src_len)`, source_length `(batch,)`, max_output_lengths `(batch,)` ints
    (</s> included). Scores are summed log-probabilities divided by the length penalty of the output length
    (</s> included), plus the coverage penalty when set. beam_size 1 is exactly greedy search.

    candidate_ids: None to score the whole vocabulary, or the sorted target ids `(candidates,)` the output layer
    is restricted to for this batch (a shortlist; must start with the reserved ids 0..3). Log-probabilities
    stay normalised over the whole vocabulary, through a rank-`rest_rank` estimate of the other ids' logits;
    `rest_rank` 0 normalises over the candidates only (see `_step_function`).
    """
    ctx = source.context
    batch, k = source.shape[0], beam_size
    rows = batch * k
    if candidate_ids is not None and tuple(candidate_ids[:len(RESERVED_IDS)]) != RESERVED_IDS:
        raise ValueError("candidate ids must start with the reserved ids 0..3")
    step, per_sentence = _step_function(model, k, candidate_ids, ctx, rest_rank)
    encoded, states = model.encode(source, source_length)
    beam_source = _BeamSource(encoded, k, per_sentence)
    states = [mx.nd.repeat(s, k, axis=0) for s in states]
    # Per hypothesis row of the whole batch (host): score, finished, steps left, length.
    scores = np.full(rows, _NEG_INF, dtype=np.float32)
    scores[::k] = 0.0
    finished = np.zeros(rows, dtype=bool)
    remaining = np.repeat(np.asarray(max_output_lengths, dtype=np.int64), k) - 1
    lengths = np.zeros(rows, dtype=np.int64)
    blocker = _NgramBlocker(options.block_ngram_repeat, rows) if options.block_ngram_repeat > 0 else None
    exclusions = _Exclusions(candidate_ids, blocker, ctx)
    coverage = np.zeros((rows, source.shape[1]), dtype=np.float32) if options.coverage_penalty > 0 else None
    keep_attention = return_attention or coverage is not None
    tokens_per_step, pointers_per_step, attention_per_step = [], [], []
    # The device arrays (encoded, states) hold the rows of the sentences still decoding (`active_rows`, in
    # order); a sentence whose hypotheses have all ended leaves them, so later steps compute only the others.
    active_rows = np.arange(rows)
    origin = np.arange(rows)                                  # into the device rows of the previous step
    previous = np.full(rows, BOS_ID, dtype=np.float32)
    step_inputs = _StepInputs(ctx)
    for _ in range(int(remaining.max()) + 1):
        packed, attention, states = step(step_inputs.fill(previous, origin), beam_source.arrays, states,
                                         exclusions.for_rows(active_rows))
        packed = packed.asnumpy()                              # the one host synchronisation of a step
        per_row = (packed.shape[1] - 1) // 2                    # beam, or the candidates when fewer
        values, positions = packed[:, :per_row], packed[:, per_row:2 * per_row].astype(np.int64)
        eos = packed[:, 2 * per_row]
        # Candidates per sentence: each open row's k best (score + log p), then one per row for closed rows
        # (finished: PAD at no cost; at the length limit: </s> at the model's own </s> log-probability).
        active = len(active_rows) // k
        row_scores, row_finished = scores[active_rows], finished[active_rows]
        closed = row_finished | (remaining[active_rows] <= 0)
        open_scores = np.where(closed[:, None], np.float32(_NEG_INF), row_scores[:, None] + values)
        single = np.where(row_finished, row_scores,
                          np.where(remaining[active_rows] <= 0, row_scores + eos, np.float32(_NEG_INF)))
        block = k * per_row
        per_sentence = np.concatenate([open_scores.reshape(active, block), single.reshape(active, k)], axis=1)
        order = np.argsort(-per_sentence, axis=1, kind="stable")[:, :k]                  # (active, k)
        appended = order >= block
        beam = np.where(appended, order - block, order // per_row).reshape(-1)
        origin = np.repeat(np.arange(active) * k, k) + beam    # into this step's device rows
        was_finished = row_finished[origin]
        candidate = positions[origin, (order % per_row).reshape(-1)]
        token = np.where(appended.reshape(-1), np.where(was_finished, PAD_ID, EOS_ID),
                         exclusions.candidate_ids[candidate])
        emitted = np.full(rows, PAD_ID, dtype=np.int64)                  # sentences already done emit PAD
        emitted[active_rows] = np.where(was_finished, PAD_ID, token)
        pointers = np.arange(rows)                                       # ... and keep their rows
        pointers[active_rows] = active_rows[origin]
        extended = ~finished[pointers]                 # hypotheses that were still open before this step
        scores[active_rows] = np.take_along_axis(per_sentence, order, axis=1).reshape(-1)
        finished[active_rows] = was_finished | (token == EOS_ID)
        lengths[active_rows] = lengths[active_rows][origin] + (~was_finished)
        remaining = remaining - 1
        tokens_per_step.append(emitted)
        pointers_per_step.append(pointers)
        if keep_attention:
            step_attention = np.zeros((rows, attention.shape[1]), dtype=np.float32)
            step_attention[active_rows] = attention.asnumpy()[origin]
            if coverage is not None:
                coverage = coverage[pointers] + step_attention * extended[:, None]
            if return_attention:
                attention_per_step.append(step_attention)
        if blocker is not None:
            blocker.advance(pointers, emitted)
        if finished.all():
            break
        still = ~finished[active_rows].reshape(active, k).all(axis=1)      # sentences that go on
        if not still.all():
            kept = np.flatnonzero(np.repeat(still, k))                    # this step's device rows that stay
            beam_source.keep(np.flatnonzero(still), kept)
            origin, active_rows = origin[kept], active_rows[kept]
        previous = emitted[active_rows].astype(np.float32)
    final_scores = scores / length_penalty(lengths, alpha, beta)
    if coverage is not None:
        source_lengths = np.repeat(source_length.asnumpy().astype(np.int64), k)
        valid = np.arange(coverage.shape[1])[None, :] < source_lengths[:, None]
        final_scores = final_scores + options.coverage_penalty * np.where(
            valid, np.log(np.minimum(np.maximum(coverage, 1e-30), 1.0)), 0.0).sum(axis=1)
    best_rows = np.arange(batch) * k + final_scores.reshape(batch, k).argmax(axis=1)
    tokens, pointers = np.stack(tokens_per_step), np.stack(pointers_per_step)
    attention = np.stack(attention_per_step) if return_attention else None
    return [backtrack(row, tokens, pointers, attention, float(final_scores[row])) for row in best_rows]


def greedy_search(model, source, source_length, max_output_lengths, return_attention=False,
                  candidate_ids: Optional[np.ndarray] = None) -> List[Hypothesis]:
    """Arg-max decoding; the same as `beam_search` with beam size 1 and no length penalty."""
    return beam_search(model, source, source_length, max_output_lengths, beam_size=1, alpha=0.0,
                       return_attention=return_attention, candidate_ids=candidate_ids)


def backtrack(row: int, tokens_per_step, pointers_per_step, attention_per_step, score: float) -> Hypothesis:
    """Follow the back-pointers from `row` of the last step. tokens/pointers `(steps, rows)`, attention
    `(steps, rows, src_len)` or None."""
    token_ids, attention_rows = [], []
    for step in range(len(tokens_per_step) - 1, -1, -1):
        token_ids.append(int(tokens_per_step[step][row]))
        if attention_per_step is not None:
            attention_rows.append(attention_per_step[step][row])
        row = int(pointers_per_step[step][row])
    token_ids.reverse()
    attention_rows.reverse()
    keep = [i for i, t in enumerate(token_ids) if t not in (PAD_ID, EOS_ID)]
    if attention_per_step is None:
        return Hypothesis([token_ids[i] for i in keep], score, None)
    attention = np.stack([attention_rows[i] for i in keep]) if keep \
        else np.zeros((0, attention_per_step[0].shape[1]), dtype=np.float32)
    return Hypothesis([token_ids[i] for i in keep], score, attention)
