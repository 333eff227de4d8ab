"""The beam search as it shipped before the host-side selection and the shortlist: decoder step, log-softmax, top-k over
`beam × vocab` and state reordering in one hybridized graph. Kept, unchanged, as the decoding benchmark's
reference path (same outputs; the speed ratio is measured against it).

Each step is one program call and one host synchronisation (the "all finished?" test): `BeamSelect` does the
log-softmax, the PAD/BOS exclusion, the finished and length-limit constraints, the top-k over `beam × vocab`
and the reordering of every state by its back-pointer inside one hybridized graph. With a `Seq2SeqModel` the
decoder step and the selection are a single program (`FusedBeamStep`); any other object with `encode` and
`decode_step` gets the model's step, then the selection program.
"""

from typing import Dict, List, Tuple

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID
from seq2seq.inference.search import Hypothesis, SearchOptions, backtrack, length_penalty

_NEG_INF = -1e30


class BeamSelect(HybridBlock):
    """One beam-search selection over `rows = batch × beam` hypotheses; owns no parameters.

    Inputs: logits `(rows, vocab)`, attention `(rows, src_len)`, scores `(rows, 1)` summed log-probabilities,
    finished `(rows,)` 1/0, remaining `(rows,)` steps left before the length limit (0: must emit </s> now),
    lengths `(rows,)` output lengths so far (</s> included), then the decoder states, each `(rows, ...)`.
    Finished rows may only emit PAD at no cost; rows at their limit must emit </s> at the model's own </s>
    log-probability (scores stay comparable); PAD and <s> are never emitted otherwise.
    Returns emitted tokens `(rows,)` (PAD after the end), back-pointers `(rows,)` (the row each new hypothesis
    extends), and the updated scores, finished, remaining, lengths, attention and states, reordered.
    """

    def __init__(self, beam_size: int, vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self._beam_size = beam_size
        self._vocab_size = vocab_size

    def hybrid_forward(self, F, logits, attention, scores, finished, remaining, lengths, *states):
        k, vocab = self._beam_size, self._vocab_size
        log_probs = F.log_softmax(logits, axis=-1)
        ids = F.contrib.arange_like(logits, axis=1)                                   # (vocab,)
        never = F.reshape(((ids == PAD_ID) + (ids == BOS_ID)) * _NEG_INF, shape=(1, -1))
        # Finished rows and rows at their limit have one candidate each (PAD at no cost, or </s>): their
        # vocabulary rows are pushed to -inf and the one candidate is appended after the beam × vocab block.
        closed = F.maximum(finished, remaining <= 0)
        row_bias = scores + F.expand_dims(closed * _NEG_INF, axis=1)                   # (rows, 1)
        open_rows = F.broadcast_add(F.broadcast_add(log_probs, row_bias), never)
        eos_log_prob = F.reshape(F.slice_axis(log_probs, axis=1, begin=EOS_ID, end=EOS_ID + 1), shape=(-1,))
        flat_scores = F.reshape(scores, shape=(-1,))
        single = F.where(finished, flat_scores, F.where(remaining <= 0, flat_scores + eos_log_prob,
                                                        F.zeros_like(flat_scores) + _NEG_INF))
        per_sentence = F.concat(F.reshape(F.reshape(open_rows, shape=(-4, -1, k, -2)), shape=(0, -3)),
                                F.reshape(single, shape=(-1, k)), dim=1)                # (batch, k * vocab + k)
        top_scores, top_index = F.topk(per_sentence, axis=1, k=k, ret_typ="both")
        appended = top_index >= k * vocab
        beam = F.where(appended, top_index - k * vocab, F.floor(top_index / vocab))      # (batch, beam)
        first_row = F.expand_dims(F.contrib.arange_like(top_index, axis=0) * k, axis=1)
        origin = F.reshape(F.broadcast_add(beam, first_row), shape=(-1,))
        was_finished = F.take(finished, origin)
        vocabulary_token = F.reshape(top_index - F.floor(top_index / vocab) * vocab, shape=(-1,))
        appended_token = was_finished * PAD_ID + (1 - was_finished) * EOS_ID
        tokens = F.where(F.reshape(appended, shape=(-1,)), appended_token, vocabulary_token)
        emitted = tokens * (1 - was_finished) + PAD_ID * was_finished
        outputs = [emitted, origin, F.reshape(top_scores, shape=(-1, 1)), F.maximum(was_finished, tokens == EOS_ID),
                   remaining - 1, F.take(lengths, origin) + (1 - was_finished), F.take(attention, origin)]
        return tuple(outputs + [F.take(s, origin) for s in states])


class FusedBeamStep(HybridBlock):
    """A model's decoder step and the beam selection as one program.

    Inputs: previous ids `(rows,)`, encoded, keys, source_length (each repeated per beam), then scores,
    finished, remaining, lengths and the states as for `BeamSelect`; returns what `BeamSelect` returns.
    """

    def __init__(self, decoder: HybridBlock, beam_size: int, vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self.decoder = decoder
        self.select = BeamSelect(beam_size, vocab_size)

    def hybrid_forward(self, F, previous, encoded, keys, source_length, scores, finished, remaining, lengths,
                       *states):
        stepped = self.decoder(previous, encoded, keys, source_length, *states)
        return self.select(stepped[0], stepped[1], scores, finished, remaining, lengths, *stepped[2:])


_SELECT_PROGRAMS: Dict[Tuple[int, int], BeamSelect] = {}


def _selection_program(beam_size: int, vocab_size: int) -> BeamSelect:
    key = (beam_size, vocab_size)
    if key not in _SELECT_PROGRAMS:
        program = BeamSelect(beam_size, vocab_size)
        program.hybridize()
        _SELECT_PROGRAMS[key] = program
    return _SELECT_PROGRAMS[key]


def _step_function(model, beam_size: int):
    """-> step(previous, encoded, search_state) returning BeamSelect's outputs for one step."""
    if hasattr(model, "program") and hasattr(model, "decoder"):
        config = model.config
        program = model.program(("beam", beam_size), lambda m: FusedBeamStep(
            m.decoder, beam_size, config.target_vocab_size))
        return lambda previous, encoded, search_state: program(previous, *encoded, *search_state)

    def generic_step(previous, encoded, search_state):
        scores, finished, remaining, lengths = search_state[:4]
        logits, attention, states = model.decode_step(previous, list(search_state[4:]), encoded)
        select = _selection_program(beam_size, logits.shape[1])
        return select(logits, attention, scores, finished, remaining, lengths, *states)
    return generic_step


def beam_search(model, source: mx.nd.NDArray, source_length: mx.nd.NDArray, max_output_lengths: np.ndarray,
                beam_size: int = 5, alpha: float = 1.0, beta: float = 0.0, return_attention: bool = False,
                candidate_ids=None, options: SearchOptions = SearchOptions()) -> List[Hypothesis]:
    """Decode a batch. source `(batch, src_len)`, source_length `(batch,)`, max_output_lengths `(batch,)` ints
    (</s> included). Scores are summed log-probabilities divided by the length penalty of the output length
    (</s> included). beam_size 1 is exactly greedy search. The current search's signature; it has neither a
    shortlist (`candidate_ids`) nor search options, and refuses them."""
    if candidate_ids is not None or options != SearchOptions():
        raise ValueError("the previous search scores the whole vocabulary and has no search options")
    ctx = source.context
    batch, k = source.shape[0], beam_size
    rows = batch * k
    encoded, states = model.encode(source, source_length)
    encoded = type(encoded)(*(mx.nd.repeat(a, k, axis=0) for a in encoded))
    initial = np.full((batch, k), _NEG_INF, dtype=np.float32)
    initial[:, 0] = 0.0
    max_lengths = np.repeat(np.asarray(max_output_lengths, dtype=np.int64), k)
    search_state = [mx.nd.array(initial.reshape(rows, 1), ctx=ctx), mx.nd.zeros((rows,), ctx=ctx),
                    mx.nd.array(max_lengths - 1, ctx=ctx), mx.nd.zeros((rows,), ctx=ctx)]
    search_state += [mx.nd.repeat(s, k, axis=0) for s in states]
    previous = mx.nd.full((rows,), BOS_ID, ctx=ctx)
    step = _step_function(model, k)
    tokens_per_step, pointers_per_step, attention_per_step = [], [], []
    for _ in range(int(max_lengths.max())):
        outputs = step(previous, encoded, search_state)
        emitted, origin, attention = outputs[0], outputs[1], outputs[6]
        search_state = list(outputs[2:6]) + list(outputs[7:])
        tokens_per_step.append(emitted)
        pointers_per_step.append(origin)
        if return_attention:
            attention_per_step.append(attention)
        if search_state[1].min().asscalar() > 0:          # the one host synchronisation of a step
            break
        previous = emitted
    scores, lengths = search_state[0].asnumpy().reshape(-1), search_state[3].asnumpy()
    final_scores = scores / length_penalty(lengths, alpha, beta)
    best_rows = np.arange(batch) * k + final_scores.reshape(batch, k).argmax(axis=1)
    tokens = mx.nd.stack(*tokens_per_step).asnumpy().astype(np.int64)
    pointers = mx.nd.stack(*pointers_per_step).asnumpy().astype(np.int64)
    attention = mx.nd.stack(*attention_per_step).asnumpy() if return_attention else None
    return [backtrack(row, tokens, pointers, attention, float(final_scores[row])) for row in best_rows]


def greedy_search(model, source, source_length, max_output_lengths, return_attention=False) -> List[Hypothesis]:
    """Arg-max decoding; the same as `beam_search` with beam size 1 and no length penalty."""
    return beam_search(model, source, source_length, max_output_lengths, beam_size=1, alpha=0.0,
                       return_attention=return_attention)
