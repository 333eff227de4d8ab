"""The frozen architecture description of a model; saved beside its parameters as config.json."""

import dataclasses
import json
from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model's graph. Sizes are in units (vector dimensions)."""

    source_vocab_size: int
    target_vocab_size: int
    num_embed_source: int = 512
    num_embed_target: int = 512
    rnn_cell_type: str = "lstm"
    rnn_num_hidden: int = 1024
    num_layers_encoder: int = 1
    num_layers_decoder: int = 1
    rnn_residual_connections: bool = False
    rnn_first_residual_layer: int = 2
    rnn_decoder_state_init: str = "last"
    rnn_attention_type: str = "mlp"
    rnn_attention_num_hidden: int = 1024
    rnn_attention_in_upper_layers: bool = True
    rnn_decoder_hidden_dropout: float = 0.0
    embed_dropout_source: float = 0.0
    embed_dropout_target: float = 0.0
    weight_tying: bool = False
    input_feeding: bool = True
    max_seq_len_source: int = 100
    max_seq_len_target: int = 100
    # Target/source length ratio of the training data: bounds the output length at inference.
    length_ratio_mean: float = 1.0
    length_ratio_std: float = 0.5

    def __post_init__(self):
        if self.rnn_num_hidden % 2:
            raise UserError(f"rnn_num_hidden must be even (bi-directional encoder), got {self.rnn_num_hidden}")
        if self.weight_tying and self.num_embed_target != self.rnn_num_hidden:
            raise UserError("weight_tying needs num_embed_target == rnn_num_hidden "
                            f"(got {self.num_embed_target} and {self.rnn_num_hidden})")

    @property
    def states_per_layer(self) -> int:
        """Recurrent state arrays per decoder layer: (h, c) for LSTM, (h,) for GRU."""
        return 2 if self.rnn_cell_type == "lstm" else 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """Build from a saved dict; unknown keys from newer versions are ignored, missing ones take defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
