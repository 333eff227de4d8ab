"""Bi-directional RNN encoder with optional stacked, residual upper layers."""

from typing import List

from mxnet.gluon import HybridBlock, nn

from .config import ModelConfig
from .layer_norm_cell import LayerNormRNNLayer
from .rnn_layers import FusedRNNLayer, fused_rnn_layer


class Encoder(HybridBlock):
    """Embeds and encodes a padded source batch.

    The first layer is bi-directional: a forward layer over the sequence and a second forward layer over each
    sequence reversed *by its own length* (so padding never enters the backward direction), each with
    `rnn_num_hidden / 2` units. Upper layers are uni-directional with `rnn_num_hidden` units.
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self._config = config
        half = config.rnn_num_hidden // 2
        with self.name_scope():
            self.embedding = nn.Embedding(config.source_vocab_size, config.num_embed_source, prefix="embed_")
            self.embed_dropout = nn.Dropout(config.embed_dropout_source)
            self.forward_layer = _rnn_layer(config, half, config.num_embed_source, "fwd_")
            self.backward_layer = _rnn_layer(config, half, config.num_embed_source, "bwd_")
            self.upper_layers = nn.HybridSequential(prefix="upper_")
            with self.upper_layers.name_scope():
                for i in range(config.num_layers_encoder - 1):
                    self.upper_layers.add(_rnn_layer(config, config.rnn_num_hidden,
                                                          config.rnn_num_hidden, f"l{i + 1}_"))

    def recurrent_layers(self) -> list:
        """The encoder's RNN layers: forward, backward, upper."""
        return [self.forward_layer, self.backward_layer] + list(self.upper_layers)

    def fused_layers(self) -> List[FusedRNNLayer]:
        """The encoder's fused RNN layers in the order `hybrid_forward` takes their flat parameters (none with
        layer normalisation: those layers run step by step)."""
        return [] if self._config.layer_normalization else self.recurrent_layers()

    def hybrid_forward(self, F, source, source_length, *flat_parameters):
        """source: `(batch, src_len)` ids; source_length: `(batch,)` float; flat_parameters: none (each layer
        concatenates its own), or one per layer of `fused_layers()` (inference, see FusedRNNLayer).

        Returns encoded `(batch, src_len, rnn_num_hidden)` and a summary `(batch, rnn_num_hidden)` chosen by
        `rnn_decoder_state_init` (last: forward state at the last word + backward state at the first; avg: mean
        over the valid positions of the top layer; zero: zeros).
        """
        embedded = self.embed_dropout(self.embedding(source))            # (batch, src_len, embed)
        embedded = F.transpose(embedded, axes=(1, 0, 2))                  # (src_len, batch, embed)
        flat = list(flat_parameters) or [None] * len(self.recurrent_layers())
        forward = self.forward_layer(embedded, flat[0])
        reversed_input = F.SequenceReverse(embedded, sequence_length=source_length, use_sequence_length=True)
        backward = F.SequenceReverse(self.backward_layer(reversed_input, flat[1]), sequence_length=source_length,
                                     use_sequence_length=True)
        hidden = F.concat(forward, backward, dim=2)                       # (src_len, batch, hidden)
        for depth, layer in enumerate(self.upper_layers, start=2):
            output = layer(hidden, flat[depth])
            hidden = output + hidden if self._residual(depth) else output
        summary = self._summary(F, hidden, forward, backward, source_length)
        return F.transpose(hidden, axes=(1, 0, 2)), summary

    def _residual(self, depth: int) -> bool:
        return self._config.rnn_residual_connections and depth >= self._config.rnn_first_residual_layer

    def _summary(self, F, hidden, forward, backward, source_length):
        mode = self._config.rnn_decoder_state_init
        if mode == "avg":
            masked = F.SequenceMask(hidden, sequence_length=source_length, use_sequence_length=True)
            return F.broadcast_div(F.sum(masked, axis=0), F.expand_dims(source_length, axis=1))
        if mode == "last" and self._config.num_layers_encoder == 1:
            last_forward = F.SequenceLast(forward, sequence_length=source_length, use_sequence_length=True)
            first_backward = F.squeeze(F.slice_axis(backward, axis=0, begin=0, end=1), axis=0)
            return F.concat(last_forward, first_backward, dim=1)
        last = F.SequenceLast(hidden, sequence_length=source_length, use_sequence_length=True)
        return last if mode == "last" else F.zeros_like(last)


def _rnn_layer(config: ModelConfig, num_hidden: int, input_size: int, prefix: str):
    """A fused layer, or a layer-normalised one run step by step (`layer_normalization`)."""
    if config.layer_normalization:
        return LayerNormRNNLayer(config.rnn_cell_type, num_hidden, input_size, prefix=prefix)
    return fused_rnn_layer(config.rnn_cell_type, num_hidden, input_size, prefix)
