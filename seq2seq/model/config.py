"""The frozen architecture description of a model; saved beside its parameters as config.json.

Every architecture option is declared once, as a hyperparameter with `model=True` in seq2seq/hyperparameters.py;
`ModelConfig` takes a field of the same name, type and default from each, and adds what the training data
measures (vocabulary sizes, target/source length ratio). Adding a model option therefore touches the
hyperparameter declaration and the model code that reads it, nothing else.
"""

import dataclasses
import json

from ..errors import UserError
from ..hyperparameters import MODEL_CHECKS, model_fields

# Measured on the training data, not chosen: (name, type, default; dataclasses.MISSING = required).
MEASURED_FIELDS = (
    ("source_vocab_size", int, dataclasses.MISSING),
    ("target_vocab_size", int, dataclasses.MISSING),
    # Target/source length ratio of the training data: bounds the output length at inference.
    ("length_ratio_mean", float, 1.0),
    ("length_ratio_std", float, 0.5),
)


class _ModelConfigMethods:
    """The behaviour of ModelConfig; its fields are made from the declarations (see the module docstring)."""

    def __post_init__(self):
        values = dataclasses.asdict(self)
        problems = [problem for _, check in MODEL_CHECKS for problem in check(values)]
        if problems:
            raise UserError("; ".join(problems))

    @classmethod
    def from_hyperparameters(cls, hp, source_vocab_size: int, target_vocab_size: int, length_ratio_mean: float,
                             length_ratio_std: float) -> "ModelConfig":
        """The architecture options of validated hyperparameters plus the measured values."""
        return cls(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                   length_ratio_mean=length_ratio_mean, length_ratio_std=length_ratio_std,
                   **{f.name: getattr(hp, f.name) for f in model_fields()})

    @property
    def attention_num_hidden(self) -> int:
        """Size of the attention MLP (units): rnn_attention_num_hidden, or rnn_num_hidden when unset."""
        return self.rnn_attention_num_hidden or self.rnn_num_hidden

    @property
    def states_per_layer(self) -> int:
        """Recurrent state arrays per decoder layer: (h, c) for LSTM, (h,) for GRU."""
        return 2 if self.rnn_cell_type == "lstm" else 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """Build from a saved dict. Unknown keys (from newer versions) are ignored, and missing ones (a config.json
        written before the option existed) take the option's default, which keeps the older behaviour."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _field_specs() -> list:
    required = [spec for spec in MEASURED_FIELDS if spec[2] is dataclasses.MISSING]
    optional = [spec for spec in MEASURED_FIELDS if spec[2] is not dataclasses.MISSING]
    specs = [(name, kind) for name, kind, _ in required]
    specs += [(f.name, f.type, dataclasses.field(default=f.default)) for f in model_fields()]
    specs += [(name, kind, dataclasses.field(default=default)) for name, kind, default in optional]
    return specs


ModelConfig = dataclasses.make_dataclass(
    "ModelConfig", _field_specs(), bases=(_ModelConfigMethods,), frozen=True,
    namespace={"__module__": __name__, "__doc__": "Everything needed to rebuild a model's graph: every "
               "hyperparameter declared with model=True, plus MEASURED_FIELDS. Sizes are in units."})
