"""Attentional RNN decoder: the layers, the attention hidden state and the output layer.

The same code runs a whole teacher-forced sequence (`steps = target_len`) or a single step (`steps = 1`).
"""

from mxnet.gluon import HybridBlock, nn

from .attention import Attention, KeyProjection
from .config import ModelConfig
from .rnn_layers import fused_rnn_layer
from .rnn_step import FusedLayerStep


class Decoder(HybridBlock):
    """Holds every decoder parameter. Computation is exposed through `initial_states`, `keys` and `run`."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self._config = config
        hidden = config.rnn_num_hidden
        num_states = config.num_layers_decoder * config.states_per_layer
        with self.name_scope():
            self.embedding = nn.Embedding(config.target_vocab_size, config.num_embed_target, prefix="embed_")
            self.embed_dropout = nn.Dropout(config.embed_dropout_target)
            self.state_init = nn.Dense(num_states * hidden, activation="tanh", flatten=False, in_units=hidden,
                                       prefix="init_")
            self.layers = nn.HybridSequential(prefix="rnn_")
            with self.layers.name_scope():
                for i in range(config.num_layers_decoder):
                    self.layers.add(fused_rnn_layer(config.rnn_cell_type, hidden, self._layer_input_size(i),
                                                    f"l{i}_"))
            # Step-by-step views on the same parameters (kept out of the child registry: no duplicates).
            self.__dict__["_layer_steps"] = [FusedLayerStep(layer, config.rnn_cell_type, hidden)
                                             for layer in self.layers]
            self.key_projection = KeyProjection(config.rnn_attention_type, config.rnn_attention_num_hidden, hidden,
                                                hidden, prefix="att_")
            self.attention = Attention(config.rnn_attention_type, config.rnn_attention_num_hidden, hidden, prefix="att_")
            self.attention_hidden = nn.Dense(hidden, activation="tanh", flatten=False, in_units=2 * hidden,
                                             prefix="att_hidden_")
            self.hidden_dropout = nn.Dropout(config.rnn_decoder_hidden_dropout)
            if config.weight_tying:
                self.output_layer = nn.Dense(config.target_vocab_size, flatten=False, in_units=hidden,
                                             params=self.embedding.params)
            else:
                self.output_layer = nn.Dense(config.target_vocab_size, flatten=False, in_units=hidden, prefix="out_")

    def _layer_input_size(self, index: int) -> int:
        config = self._config
        if index == 0:
            return config.num_embed_target + (config.rnn_num_hidden if config.input_feeding else 0)
        return config.rnn_num_hidden * (2 if self._attention_below else 1)

    @property
    def _attention_below(self) -> bool:
        """True when attention is computed from the bottom layer and fed to the upper layers (GNMT style)."""
        return self._config.rnn_attention_in_upper_layers and self._config.num_layers_decoder > 1

    @property
    def num_states(self) -> int:
        """Number of state arrays `run` takes and returns (layer states, plus the attention hidden if input feeding)."""
        return self._config.num_layers_decoder * self._config.states_per_layer + int(self._config.input_feeding)

    def initial_states(self, F, summary):
        """summary `(batch, hidden)` -> list of states, each `(batch, hidden)`."""
        num_layer_states = self._config.num_layers_decoder * self._config.states_per_layer
        if self._config.rnn_decoder_state_init == "zero":
            states = [F.zeros_like(summary) for _ in range(num_layer_states)]
        else:
            projected = self.state_init(summary)
            states = list(F.split(projected, num_outputs=num_layer_states, axis=1)) if num_layer_states > 1 \
                else [projected]
        if self._config.input_feeding:
            states.append(F.zeros_like(summary))
        return states

    def keys(self, encoded):
        """encoded `(batch, src_len, hidden)` -> attention keys, computed once per source batch."""
        return self.key_projection(encoded)

    def run(self, F, target_input, states, encoded, keys, source_length, single_step=False):
        """Run `steps` decoder steps with teacher forcing (or one step at inference).

        target_input `(batch, steps)` ids; states: list of `(batch, hidden)`; encoded `(batch, src_len, hidden)`.
        Returns logits `(batch, steps, vocab)`, attention weights `(batch, steps, src_len)`, new states.
        With input feeding, `steps` must be 1: the previous attention hidden state is part of the input.
        """
        attention_hidden, weights, new_states = self.run_hidden(F, target_input, states, encoded, keys,
                                                                source_length, single_step)
        return self.output_layer(attention_hidden), weights, new_states

    def run_hidden(self, F, target_input, states, encoded, keys, source_length, single_step=False):
        """Like `run` but stops before the output layer: attention hidden `(batch, steps, hidden)`, weights,
        new states. Training with input feeding applies the output layer once to all steps.
        `single_step` (steps == 1) runs the RNN layers as plain matrix products (see rnn_step.py)."""
        layers = self._layer_steps if single_step else list(self.layers)
        config = self._config
        embedded = F.transpose(self.embed_dropout(self.embedding(target_input)), axes=(1, 0, 2))  # (steps, batch, E)
        layer_input = embedded
        if config.input_feeding:
            layer_input = F.concat(embedded, F.expand_dims(states[-1], axis=0), dim=2)
        per_layer = config.states_per_layer
        new_states, context, weights = [], None, None
        previous_output = None
        for index, layer in enumerate(layers):
            layer_states = [F.expand_dims(s, axis=0) for s in states[index * per_layer:(index + 1) * per_layer]]
            output, next_states = layer(layer_input, layer_states)
            new_states.extend(F.squeeze(s, axis=0) for s in next_states)
            if previous_output is not None and self._residual(index + 1):
                output = output + previous_output
            if index == 0 and self._attention_below:
                context, weights = self._attend(F, output, encoded, keys, source_length)
            previous_output = output
            layer_input = F.concat(output, F.transpose(context, axes=(1, 0, 2)), dim=2) if self._attention_below \
                else output
        top = F.transpose(previous_output, axes=(1, 0, 2))                       # (batch, steps, hidden)
        if context is None:
            context, weights = self.attention(top, keys, encoded, source_length)
        attention_hidden = self.hidden_dropout(self.attention_hidden(F.concat(top, context, dim=2)))
        if config.input_feeding:
            new_states.append(F.reshape(attention_hidden, shape=(0, -1)))
        return attention_hidden, weights, new_states

    def _attend(self, F, layer_output, encoded, keys, source_length):
        return self.attention(F.transpose(layer_output, axes=(1, 0, 2)), keys, encoded, source_length)

    def _residual(self, depth: int) -> bool:
        return self._config.rnn_residual_connections and depth >= self._config.rnn_first_residual_layer

    def hybrid_forward(self, F, *args):
        raise NotImplementedError("Decoder is run through Seq2SeqModel's programs")
