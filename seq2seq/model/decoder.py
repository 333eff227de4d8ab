"""The decoder side of the model: the bridge from the encoder (initial states, attention keys) and the
attentional RNN decoder with its output layer.

The decoder's own program (`Decoder.hybrid_forward`) is one inference step; training programs (see
`programs.py`) drive the same blocks over whole target sequences.
"""

from mxnet.gluon import HybridBlock, nn

from .attention import Attention, KeyProjection
from .config import ModelConfig
from .rnn_cell import RecurrentCell
from .tying import ties_output_layer


def num_decoder_states(config: ModelConfig) -> int:
    """State arrays the decoder carries between steps: the layers' (h[, c]), plus the attention hidden state
    when input feeding."""
    return config.num_layers_decoder * config.states_per_layer + int(config.input_feeding)


class Bridge(HybridBlock):
    """Computed once per source batch: encoded `(batch, src_len, hidden)` and summary `(batch, hidden)` ->
    attention keys `(batch, src_len, key)` and the decoder's initial states, each `(batch, hidden)`."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self._config = config
        hidden = config.rnn_num_hidden
        self._num_layer_states = config.num_layers_decoder * config.states_per_layer
        with self.name_scope():
            if config.rnn_decoder_state_init != "zero":
                self.state_init = nn.Dense(self._num_layer_states * hidden, activation="tanh", flatten=False,
                                           in_units=hidden, prefix="init_")
            self.key_projection = KeyProjection(config.rnn_attention_type, config.attention_num_hidden, hidden,
                                                hidden, prefix="att_")

    def hybrid_forward(self, F, encoded, summary):
        if self._config.rnn_decoder_state_init == "zero":
            states = [F.zeros_like(summary) for _ in range(self._num_layer_states)]
        else:
            projected = self.state_init(summary)
            states = list(F.split(projected, num_outputs=self._num_layer_states, axis=1)) \
                if self._num_layer_states > 1 else [projected]
        if self._config.input_feeding:
            states.append(F.zeros_like(summary))
        return tuple([self.key_projection(encoded)] + states)


class Decoder(HybridBlock):
    """Target embeddings, RNN layers, attention, attention hidden state and output layer.

    As a program: `decoder(previous_ids, encoded, keys, source_length, *states)` runs one step:
    previous_ids `(batch,)`, encoded `(batch, src_len, hidden)`, keys `(batch, src_len, key)`, source_length
    `(batch,)`, states each `(batch, hidden)` -> (logits `(batch, vocab)`, attention `(batch, src_len)`, *states).
    """

    def __init__(self, config: ModelConfig, source_embedding_params=None, **kwargs):
        """`source_embedding_params`: the encoder embedding's ParameterDict, given when ties_source_and_target:
        the target embedding then uses the encoder's weight instead of a matrix of its own."""
        super().__init__(**kwargs)
        self._config = config
        hidden = config.rnn_num_hidden
        with self.name_scope():
            self.embedding = nn.Embedding(config.target_vocab_size, config.num_embed_target, prefix="embed_",
                                          params=source_embedding_params)
            self.embed_dropout = nn.Dropout(config.embed_dropout_target)
            self.cells = nn.HybridSequential(prefix="rnn_")
            with self.cells.name_scope():
                for i in range(config.num_layers_decoder):
                    self.cells.add(RecurrentCell(config.rnn_cell_type, hidden, self._layer_input_size(i),
                                                 config.layer_normalization, prefix=f"l{i}_"))
            self.attention = Attention(config.rnn_attention_type, config.attention_num_hidden, hidden, prefix="att_")
            self.attention_hidden = nn.Dense(hidden, activation="tanh", flatten=False, in_units=2 * hidden,
                                             prefix="att_hidden_")
            self.hidden_dropout = nn.Dropout(config.rnn_decoder_hidden_dropout)
            if ties_output_layer(config):
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
        return num_decoder_states(self._config)

    def hybrid_forward(self, F, previous_ids, encoded, keys, source_length, *states):
        hidden, weights, new_states = self.step_hidden(F, previous_ids, encoded, keys, source_length, list(states))
        return tuple([self.output_layer(hidden), weights] + new_states)

    def step_hidden(self, F, previous_ids, encoded, keys, source_length, states, rows_per_source=1):
        """One inference step up to the output layer (no dropout), on batch-major 2-D arrays throughout:
        previous_ids `(rows,)`, source_length `(rows,)`, states a list of `(rows, hidden)` -> attention hidden state
        `(rows, hidden)`, attention `(rows, src_len)`, new states. encoded and keys hold one source for every
        `rows_per_source` consecutive rows (a beam's hypotheses): `(rows / rows_per_source, src_len, ·)`."""
        return self.run_hidden(F, self.embedding(previous_ids), states, encoded, keys, source_length,
                               dropout=False, flat_step=True, rows_per_source=rows_per_source)

    def embed(self, F, target_ids):
        """target_ids `(batch, steps)` -> time-major embeddings `(steps, batch, embed)`, dropout applied."""
        return F.transpose(self.embed_dropout(self.embedding(target_ids)), axes=(1, 0, 2))

    def run_hidden(self, F, embedded, states, encoded, keys, source_length, whole_sequence=False,
                   for_training=False, dropout=True, flat_step=False, rows_per_source=1):
        """Run the RNN layers and the attention over `steps` target positions.

        embedded `(steps, batch, embed)` time-major; states: list of `(batch, hidden)`. `whole_sequence` runs each
        layer with the fused RNN operator (any `steps`, no input feeding); otherwise steps must be 1, and
        `for_training` picks the attention's formulation with the cheaper backward pass; `dropout=False` leaves
        the hidden dropout out of the graph (inference programs).
        Returns the attention hidden states `(batch, steps, hidden)` (before the output layer), the attention
        weights `(batch, steps, src_len)` and the new states.
        `flat_step`: one step with every array batch-major and without the steps axis (embedded `(batch, embed)`,
        returns `(batch, hidden)` and `(batch, src_len)`): no reshaping operators in an inference step's graph;
        `rows_per_source` then says how many consecutive rows share each source of encoded and keys (see
        `step_hidden`).
        """
        config = self._config
        one_step = for_training and not whole_sequence
        time_axis = 1 if flat_step else 2                       # the feature axis of a layer's input
        layer_input = embedded
        if config.input_feeding:
            feedback = states[-1] if flat_step else F.expand_dims(states[-1], axis=0)
            layer_input = F.concat(embedded, feedback, dim=time_axis)
        per_layer = config.states_per_layer
        new_states, context, weights = [], None, None
        previous_output = None

        def batch_major(array):                                  # (steps, batch, n) -> (batch, steps, n)
            return array if flat_step else F.transpose(array, axes=(1, 0, 2))

        for index, cell in enumerate(self.cells):
            output, next_states = cell(layer_input, states[index * per_layer:(index + 1) * per_layer],
                                       whole_sequence, flat_step)
            new_states.extend(next_states)
            if previous_output is not None and self._residual(index + 1):
                output = output + previous_output
            if index == 0 and self._attention_below:
                context, weights = self.attention(batch_major(output), keys, encoded, source_length, one_step,
                                                  flat_step, rows_per_source)
            previous_output = output
            layer_input = F.concat(output, batch_major(context), dim=time_axis) if self._attention_below \
                else output
        top = batch_major(previous_output)                      # (batch, steps, hidden) or (batch, hidden)
        if context is None:
            context, weights = self.attention(top, keys, encoded, source_length, one_step, flat_step,
                                              rows_per_source)
        attention_hidden = self.attention_hidden(F.concat(top, context, dim=time_axis))
        if dropout:
            attention_hidden = self.hidden_dropout(attention_hidden)
        if config.input_feeding:
            new_states.append(attention_hidden if flat_step else F.reshape(attention_hidden, shape=(-3, -2)))
        return attention_hidden, weights, new_states

    def _residual(self, depth: int) -> bool:
        return self._config.rnn_residual_connections and depth >= self._config.rnn_first_residual_layer
