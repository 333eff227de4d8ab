"""The encoder-decoder model and its three hybridized programs: teacher-forced training, encode, decode step.

Search (greedy, beam) lives in `seq2seq.inference.search` and only uses `encode` and `decode_step`.
"""

import warnings
from typing import List, NamedTuple

import mxnet as mx
from mxnet.gluon import Block, HybridBlock

from .config import ModelConfig
from .decoder import Decoder
from .encoder import Encoder


# Each program uses only part of the shared parameters; Gluon would warn about the rest on every build.
warnings.filterwarnings("ignore", message=".*is not used by any computation.*")
# The decoder's step views share its RNN layers' parameters and are deliberately not registered as children.
warnings.filterwarnings("ignore", message=".*_layer_steps\" is an unregistered container.*")


class EncodedSource(NamedTuple):
    """What the decoder attends to. encoded `(batch, src_len, hidden)`, keys `(batch, src_len, key)`,
    source_length `(batch,)` float."""

    encoded: mx.nd.NDArray
    keys: mx.nd.NDArray
    source_length: mx.nd.NDArray


class Seq2SeqModel(Block):
    """Attentional RNN encoder-decoder.

    - `forward(source, source_length, target_input)` -> logits `(batch, trg_len, vocab)` with full teacher
      forcing (one fused pass over the target when there is no input feeding).
    - `encode(source, source_length)` -> (EncodedSource, initial decoder states).
    - `decode_step(previous_ids, states, encoded_source)` -> logits `(batch, vocab)`, attention `(batch, src_len)`,
      new states. States are lists of `(batch, ...)` arrays, batch first, so search can reorder them.
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        with self.name_scope():
            self.encoder = Encoder(config, prefix="encoder_")
            self.decoder = Decoder(config, prefix="decoder_")
        # Stored outside Block.__setattr__ so that the programs are not registered as children (no cycle).
        self.__dict__["_teacher_forced"] = _TeacherForcedProgram(self)
        self.__dict__["_encode"] = _EncodeProgram(self)
        self.__dict__["_step"] = _StepProgram(self)
        self.__dict__["_hidden_step"] = _HiddenStepProgram(self)

    def hybridize(self, active=True, **kwargs):
        # Static buffers pay off for the one-call-per-batch fused program; the step programs run many times per
        # graph with shapes that change with every bucket, where static buffers only cost memory (measured at
        # the reference size: 5.7 GB against 3.6 GB resident, same speed).
        self._teacher_forced.hybridize(active, static_alloc=True, **kwargs)
        for program in (self._encode, self._step, self._hidden_step):
            program.hybridize(active, **kwargs)

    def forward(self, source, source_length, target_input, choose_next_input=None):
        """Logits `(batch, trg_len, vocab)` for target_input `(batch, trg_len)` (starting with <s>).

        See `target_hidden`; training calls that and `output_logits` on the unpadded positions only.
        """
        return self.output_logits(self.target_hidden(source, source_length, target_input, choose_next_input))

    def output_logits(self, hidden):
        """The output layer: hidden `(..., rnn_num_hidden)` -> logits `(..., target_vocab)`. Imperative, so that
        callers may pass any number of gathered rows."""
        return self.decoder.output_layer(hidden)

    def target_hidden(self, source, source_length, target_input, choose_next_input=None):
        """Attention hidden states `(batch, trg_len, rnn_num_hidden)` before the output layer.

        Without input feeding and without `choose_next_input` this is one fused pass over the target. Otherwise
        the decoder runs step by step; `choose_next_input(step, logits, reference_ids)` may replace the
        reference ids fed at the next step (scheduled sampling).
        """
        if not self.config.input_feeding and choose_next_input is None:
            return self._teacher_forced(source, source_length, target_input)
        encoded, states = self.encode(source, source_length)
        hidden_steps = []
        next_ids = target_input[:, 0]
        for t in range(target_input.shape[1]):
            outputs = self._hidden_step(next_ids, encoded.encoded, encoded.keys, encoded.source_length, *states)
            hidden_steps.append(outputs[0])
            states = list(outputs[1:])
            if t + 1 < target_input.shape[1]:
                next_ids = target_input[:, t + 1]
                if choose_next_input is not None:
                    next_ids = choose_next_input(t, self.output_logits(outputs[0]), next_ids)
        return mx.nd.stack(*hidden_steps, axis=1)

    def encode(self, source, source_length):
        """source `(batch, src_len)`, source_length `(batch,)` -> (EncodedSource, list of initial states)."""
        outputs = self._encode(source, source_length)
        return EncodedSource(outputs[0], outputs[1], source_length), list(outputs[2:])

    def decode_step(self, previous_ids, states: List, encoded_source: EncodedSource):
        """previous_ids `(batch,)` -> logits `(batch, vocab)`, attention `(batch, src_len)`, new states."""
        outputs = self._step(previous_ids, encoded_source.encoded, encoded_source.keys,
                             encoded_source.source_length, *states)
        return outputs[0], outputs[1], list(outputs[2:])

    def initialize_parameters(self, initializer, ctx):
        """Initialize every parameter; forget-gate-agnostic, shapes are inferred where deferred."""
        self.collect_params().initialize(initializer, ctx=ctx, force_reinit=True)


class _Program(HybridBlock):
    """A hybridizable view on a model: shares the model's parameters, owns none of its own."""

    def __init__(self, model: Seq2SeqModel):
        super().__init__(prefix=model.prefix)
        self.__dict__["model"] = model  # not registered as a child: the model owns the programs

    def collect_params(self, select=None):
        return self.model.collect_params(select)


class _TeacherForcedProgram(_Program):
    def hybrid_forward(self, F, source, source_length, target_input):
        model = self.model
        encoded, summary = model.encoder(source, source_length)
        states = model.decoder.initial_states(F, summary)
        keys = model.decoder.keys(encoded)
        hidden, _, _ = model.decoder.run_hidden(F, target_input, states, encoded, keys, source_length)
        return hidden


class _EncodeProgram(_Program):
    def hybrid_forward(self, F, source, source_length):
        model = self.model
        encoded, summary = model.encoder(source, source_length)
        states = model.decoder.initial_states(F, summary)
        return tuple([encoded, model.decoder.keys(encoded)] + states)


class _StepProgram(_Program):
    def hybrid_forward(self, F, previous_ids, encoded, keys, source_length, *states):
        logits, weights, new_states = self.model.decoder.run(
            F, F.expand_dims(previous_ids, axis=1), list(states), encoded, keys, source_length, single_step=True)
        return tuple([F.reshape(logits, shape=(0, -1)), F.reshape(weights, shape=(0, -1))] + new_states)


class _HiddenStepProgram(_Program):
    def hybrid_forward(self, F, previous_ids, encoded, keys, source_length, *states):
        hidden, _, new_states = self.model.decoder.run_hidden(
            F, F.expand_dims(previous_ids, axis=1), list(states), encoded, keys, source_length, single_step=True)
        return tuple([F.reshape(hidden, shape=(0, -1))] + new_states)
