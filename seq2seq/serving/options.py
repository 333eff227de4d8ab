"""The `configuration` object of a JSON request → overrides of the model's DecodeOptions.

Amazon's endpoint documents only `"attention_matrix": "true"` (a string); we also accept real JSON
booleans and numbers, plus our decoding extras. Values arrive as strings or numbers; each is
checked against its bounds and a bad one names the key and where it came from.
"""
import dataclasses
import math
from typing import Any, Callable, Dict, Mapping

from seq2seq.serving.http_errors import bad_request

MAX_BEAM_SIZE = 64
MAX_OUTPUT_LENGTH = 1024
MAX_LENGTH_PENALTY_ALPHA = 10.0
MAX_LENGTH_PENALTY_BETA = 100.0


def _parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise bad_request(f"{where}: expected true or false (or the strings \"true\"/\"false\"), got {value!r}")


def _int_parser(low: int, high: int) -> Callable[[Any, str], int]:
    def parse(value: Any, where: str) -> int:
        number = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        if isinstance(number, bool) or not isinstance(number, int):
            raise bad_request(f"{where}: expected an integer in [{low}, {high}], got {value!r}")
        if not low <= number <= high:
            raise bad_request(f"{where}: {number} is outside the allowed range [{low}, {high}]")
        return number
    return parse


def _float_parser(low: float, high: float) -> Callable[[Any, str], float]:
    def parse(value: Any, where: str) -> float:
        number = None
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        if number is None or not math.isfinite(number):
            raise bad_request(f"{where}: expected a number in [{low:g}, {high:g}], got {value!r}")
        if not low <= number <= high:
            raise bad_request(f"{where}: {number:g} is outside the allowed range [{low:g}, {high:g}]")
        return number
    return parse


OPTION_PARSERS: Dict[str, Callable[[Any, str], Any]] = {
    "attention_matrix": _parse_bool,
    "beam_size": _int_parser(1, MAX_BEAM_SIZE),
    "length_penalty_alpha": _float_parser(0.0, MAX_LENGTH_PENALTY_ALPHA),
    "length_penalty_beta": _float_parser(0.0, MAX_LENGTH_PENALTY_BETA),
    "max_output_length": _int_parser(1, MAX_OUTPUT_LENGTH),
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
        parser = OPTION_PARSERS.get(key)
        if parser is None:
            raise bad_request(f"{where}: unknown option {key!r}; allowed: {', '.join(sorted(OPTION_PARSERS))}")
        overrides[key] = parser(value, f"{where}.{key}")
    return overrides


def apply_overrides(default_options, overrides: Mapping[str, Any]):
    """A copy of the model's default DecodeOptions with `overrides` applied (a frozen dataclass)."""
    if not overrides:
        return default_options
    return dataclasses.replace(default_options, **overrides)
