"""The `configuration` object of a JSON request → overrides of the model's DecodeOptions.

Amazon's endpoint documents only `"attention_matrix": "true"` (a string); we also accept real JSON
booleans and numbers, plus our decoding extras. Values arrive as strings or numbers; each is parsed
by seq2seq.typed_values, checked against its bounds, and a bad one is a 400 naming its path
("instances[2].configuration.beam_size").
"""
import dataclasses
from typing import Any, Dict, Mapping

from seq2seq.serving.http_errors import bad_request
from seq2seq.typed_values import Bool, Float, Int, Kind, RequestField, parse

MAX_BEAM_SIZE = 64
MAX_OUTPUT_LENGTH = 1024
MAX_LENGTH_PENALTY_ALPHA = 10.0
MAX_LENGTH_PENALTY_BETA = 100.0
MAX_BLOCK_NGRAM_REPEAT = 16
MAX_COVERAGE_PENALTY = 10.0

OPTION_KINDS: Dict[str, Kind] = {
    "attention_matrix": Bool(),
    "beam_size": Int(1, MAX_BEAM_SIZE),
    "length_penalty_alpha": Float(0.0, MAX_LENGTH_PENALTY_ALPHA),
    "length_penalty_beta": Float(0.0, MAX_LENGTH_PENALTY_BETA),
    "max_output_length": Int(1, MAX_OUTPUT_LENGTH),
    "shortlist": Bool(),
    "block_ngram_repeat": Int(0, MAX_BLOCK_NGRAM_REPEAT),
    "coverage_penalty": Float(0.0, MAX_COVERAGE_PENALTY),
}


def parse_configuration(configuration: Any, where: str = "configuration") -> Dict[str, Any]:
    """Validate a `configuration` object; returns {DecodeOptions field: typed value}.

    None (absent) gives {}. Unknown keys are rejected so that a misspelt option is not silently ignored.
    """
    if configuration is None:
        return {}
    if not isinstance(configuration, Mapping):
        raise bad_request(f"{where}: expected an object, got {type(configuration).__name__}")
    overrides = {}
    for key, value in configuration.items():
        kind = OPTION_KINDS.get(key)
        if kind is None:
            raise bad_request(f"{where}: unknown option {key!r}; allowed: {', '.join(sorted(OPTION_KINDS))}")
        overrides[key] = parse(kind, value, RequestField(f"{where}.{key}"))
    return overrides


def apply_overrides(default_options, overrides: Mapping[str, Any]):
    """A copy of the model's default DecodeOptions with `overrides` applied (a frozen dataclass)."""
    if not overrides:
        return default_options
    return dataclasses.replace(default_options, **overrides)
