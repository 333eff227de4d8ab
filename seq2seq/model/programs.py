"""The model's training and encoding programs: plain HybridBlocks that own no parameters.

Each program registers as children exactly the blocks whose parameters it computes with, so its
`collect_params()` is the set it binds (Gluon warns about any registered parameter a graph leaves unused).
The inference step program is the `Decoder` itself.
"""

import warnings
from typing import List, Optional

from mxnet.gluon import HybridBlock


def columns(F, array, count: int) -> List:
    """Split `(batch, count)` into `count` arrays of shape `(batch,)`."""
    parts = F.split(array, num_outputs=count, axis=1, squeeze_axis=True)
    return [parts] if count == 1 else [parts[i] for i in range(count)]


def encode_source(F, encoder, bridge, source, source_length, *flat_parameters):
    """-> encoded `(batch, src_len, hidden)`, keys `(batch, src_len, key)`, list of initial decoder states.
    flat_parameters: the encoder layers' flat parameters (inference; see Encoder), or none."""
    encoded, summary = encoder(source, source_length, *flat_parameters)
    outputs = bridge(encoded, summary)
    return encoded, outputs[0], list(outputs[1:])


class InferenceProgram(HybridBlock):
    """A program that computes with only part of the blocks it registers: the encoding program gets the encoder
    layers' flat parameters as inputs, a beam step projects onto output-layer rows it is given. Gluon's warning
    about the parameters such a graph leaves unused is expected; it is silenced on the first call, which builds
    the graph (decoding must not print library warnings to users)."""

    _graph_built = False

    def forward(self, *args):
        if self._graph_built:
            return super().forward(*args)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is not used by any computation", category=UserWarning)
            outputs = super().forward(*args)
        self._graph_built = True
        return outputs


class EncodeProgram(InferenceProgram):
    """(source `(batch, src_len)`, source_length `(batch,)`, *the encoder layers' flat parameters) -> (encoded,
    keys, *initial states)."""

    def __init__(self, encoder, bridge, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.bridge = bridge

    def hybrid_forward(self, F, source, source_length, *flat_parameters):
        encoded, keys, states = encode_source(F, self.encoder, self.bridge, source, source_length, *flat_parameters)
        return tuple([encoded, keys] + states)


class TrainingProgram(HybridBlock):
    """Teacher-forced (or scheduled-sampling) logits of the non-padding target positions, in one call.

    Inputs: source `(batch, src_len)`, source_length `(batch,)`, target_input `(batch, trg_len)` starting with
    <s>, valid_positions `(tokens,)` int64 indices into the flattened `(batch * trg_len)` positions, and, when
    `sampled`, sample_mask `(batch, trg_len)`: 1 where position t is fed the reference id, 0 where it is fed the
    arg-max of the model's own logits at t - 1 (column 0 is always the reference <s>).
    Returns logits `(tokens, vocab)`; when `sampled` also the ids that were fed `(batch, trg_len)`.

    `target_length` None: one fused pass of each decoder layer over the whole target (no input feeding, no
    sampling; any length). Otherwise the decoder loop is unrolled in the graph over exactly `target_length`
    positions: one program per bucket length, all sharing the same blocks.
    """

    def __init__(self, encoder, bridge, decoder, target_length: Optional[int], sampled: bool, **kwargs):
        super().__init__(**kwargs)
        if target_length is None and sampled:
            raise ValueError("scheduled sampling needs an unrolled program (a fixed target length)")
        self._target_length = target_length
        self._sampled = sampled
        self.encoder = encoder
        self.bridge = bridge
        self.decoder = decoder

    def hybrid_forward(self, F, source, source_length, target_input, valid_positions, sample_mask=None):
        encoded, keys, states = encode_source(F, self.encoder, self.bridge, source, source_length)
        decoder = self.decoder
        if self._target_length is None:
            hidden, _, _ = decoder.run_hidden(F, decoder.embed(F, target_input), states, encoded, keys,
                                              source_length, whole_sequence=True)
            rows = F.take(F.reshape(hidden, shape=(-3, -2)), valid_positions)
            return decoder.output_layer(rows)
        if self._sampled:
            return self._sampled_logits(F, target_input, sample_mask, valid_positions, states, encoded, keys,
                                        source_length)
        steps = F.split(decoder.embed(F, target_input), num_outputs=self._target_length, axis=0)
        hidden = []
        for t in range(self._target_length):
            step_input = steps if self._target_length == 1 else steps[t]
            step_hidden, _, states = decoder.run_hidden(F, step_input, states, encoded, keys, source_length,
                                                        for_training=True)
            hidden.append(step_hidden)                                        # (batch, 1, hidden)
        hidden = F.concat(*hidden, dim=1) if len(hidden) > 1 else hidden[0]
        return decoder.output_layer(F.take(F.reshape(hidden, shape=(-3, -2)), valid_positions))

    def _sampled_logits(self, F, target_input, sample_mask, valid_positions, states, encoded, keys, source_length):
        decoder = self.decoder
        length = self._target_length
        reference, use_reference = columns(F, target_input, length), columns(F, sample_mask, length)
        ids, fed, logits = reference[0], [reference[0]], []
        for t in range(length):
            step_hidden, _, states = decoder.run_hidden(F, decoder.embed(F, F.expand_dims(ids, axis=1)), states,
                                                        encoded, keys, source_length, for_training=True)
            step_logits = decoder.output_layer(F.reshape(step_hidden, shape=(-3, -2)))   # (batch, vocab)
            logits.append(step_logits)
            if t + 1 < length:
                predicted = F.BlockGrad(F.argmax(F.cast(step_logits, dtype="float32"), axis=1))  # fp16 ids > 2048
                ids = F.where(use_reference[t + 1], reference[t + 1], predicted)
                fed.append(ids)
        all_logits = F.reshape(F.stack(*logits, axis=1), shape=(-3, -2))            # (batch * trg_len, vocab)
        return F.take(all_logits, valid_positions), F.stack(*fed, axis=1)
