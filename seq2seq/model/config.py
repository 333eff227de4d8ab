"""The frozen architecture description of a model; saved beside its parameters as config.json."""

import dataclasses
import json
from dataclasses import dataclass

from ..errors import UserError


# ModelConfig fields whose hyperparameter has another name (Amazon's names are kept for the hyperparameters).
HYPERPARAMETER_NAMES = {"rnn_attention_num_hidden": "attention_num_hidden"}


def even_hidden_problems(values) -> list:
    """The bi-directional encoder gives each direction half of rnn_num_hidden."""
    if values["rnn_num_hidden"] % 2:
        return [f"hyperparameter 'rnn_num_hidden' = {json.dumps(values['rnn_num_hidden'])}: must be even (the "
                "bidirectional encoder gives each direction half); allowed: even integer >= 2"]
    return []


def weight_tying_problems(values) -> list:
    """Tied output and target embedding matrices need the same width."""
    if values["weight_tying"] and values["num_embed_target"] != values["rnn_num_hidden"]:
        return [f"hyperparameter 'weight_tying' = true needs num_embed_target ({values['num_embed_target']}) "
                f"equal to rnn_num_hidden ({values['rnn_num_hidden']})"]
    return []


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
        values = dataclasses.asdict(self)
        problems = even_hidden_problems(values) + weight_tying_problems(values)
        if problems:
            raise UserError("; ".join(problems))

    @classmethod
    def from_hyperparameters(cls, hp, source_vocab_size: int, target_vocab_size: int, length_ratio_mean: float,
                             length_ratio_std: float) -> "ModelConfig":
        """The architecture part of validated hyperparameters: every field below the vocabulary sizes is read
        from the hyperparameter of the same name (or the one named in HYPERPARAMETER_NAMES)."""
        measured = {"source_vocab_size": source_vocab_size, "target_vocab_size": target_vocab_size,
                    "length_ratio_mean": length_ratio_mean, "length_ratio_std": length_ratio_std}
        values = {f.name: measured[f.name] if f.name in measured
                  else getattr(hp, HYPERPARAMETER_NAMES.get(f.name, f.name)) for f in dataclasses.fields(cls)}
        return cls(**values)

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
