"""The hyperparameter search space: one file format for the local Optuna search and SageMaker tuning jobs.

A search space file (JSON, or YAML by the extension .yaml / .yml) maps hyperparameter names to ranges:

    learning_rate:              {type: continuous, min: 0.0005, max: 0.003, scaling: logarithmic}
    rnn_decoder_hidden_dropout: {type: continuous, min: 0.0, max: 0.4}
    num_layers_encoder:         {type: integer, min: 1, max: 2}
    rnn_attention_type:         {type: categorical, values: [mlp, dot]}

Bounds are inclusive. `scaling` is SageMaker's ScalingType: auto (the default), linear, logarithmic (min > 0)
or reverse_logarithmic (continuous only, 0 <= min and max < 1); categorical ranges take none. Every bound and
every categorical value is checked by the hyperparameter gate's own declaration of that name
(seq2seq/hyperparameters.py), so the allowed values are declared once. Every problem of a file is reported at
once in one `HyperparameterError` whose message names the file and the entry.
"""

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from seq2seq.errors import HyperparameterError, UserError
from seq2seq.hyperparameters import (
    ALIASES, COMPAT, Hyperparameters, _raise_if_errors, _unknown_key_message, is_reserved, parse_hyperparameters,
)
from seq2seq.typed_values import Float, Hyperparameter, Int, InvalidValue, Kind, Maybe, decode_value

# SageMaker's ScalingType Auto, Linear, Logarithmic, ReverseLogarithmic
SCALINGS = ("auto", "linear", "logarithmic", "reverse_logarithmic")
KINDS = ("continuous", "integer", "categorical")
_ENTRY_KEYS = {"continuous": ("type", "min", "max", "scaling"), "integer": ("type", "min", "max", "scaling"),
               "categorical": ("type", "values")}
_INTEGER_SCALINGS = ("auto", "linear", "logarithmic")  # SageMaker has no reverse logarithmic integer range

# Settings that change where or how visibly a job runs, not what it learns: searching them measures nothing.
NOT_SEARCHABLE = {
    "devices": "it chooses the hardware, not the model",
    "ps_port": "it is a network setting of multi-host training",
    "peer_timeout_seconds": "it is a network setting of multi-host training",
    "log_frequency_num_batches": "it only changes how often progress is logged",
    "tensorboard": "it only turns the event files on or off",
    "training_metric": "it has no effect (accepted for compatibility)",
    "encoder_type": "only the rnn encoder is supported",
    "decoder_type": "only the rnn decoder is supported",
}


@dataclass(frozen=True)
class ParameterRange:
    """One searched hyperparameter.

    `kind` is "continuous", "integer" or "categorical". `low` and `high` are the inclusive bounds (float for
    continuous, int for integer; None for categorical). `values` are the categorical values as strings, as
    SageMaker passes them (None otherwise). `scaling` is one of SCALINGS.
    """

    name: str
    kind: str
    low: Optional[float]
    high: Optional[float]
    values: Optional[tuple]
    scaling: str = "auto"


def declared_kinds() -> Dict[str, Kind]:
    """The gate's kind (allowed values) of every hyperparameter."""
    return {f.name: f.metadata["kind"] for f in dataclasses.fields(Hyperparameters) if "kind" in f.metadata}


def _compat_names() -> set:
    return {f.name for f in dataclasses.fields(Hyperparameters) if f.metadata.get("origin") == COMPAT}


def _numeric_kind(kind: Kind) -> Optional[Kind]:
    """The Int or Float kind of a number hyperparameter (inside Maybe), else None."""
    inner = kind.inner if isinstance(kind, Maybe) else kind
    return inner if isinstance(inner, (Int, Float)) else None


def value_text(value: Any) -> str:
    """A hyperparameter value as the string SageMaker passes: text as it is, numbers, booleans and none as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _normalized_scaling(scaling) -> Optional[str]:
    """'ReverseLogarithmic', 'reverse_logarithmic', 'Reverse-Logarithmic' -> 'reverse_logarithmic'; None if unknown."""
    if not isinstance(scaling, str):
        return None
    squashed = scaling.strip().lower().replace("_", "").replace("-", "")
    return next((name for name in SCALINGS if name.replace("_", "") == squashed), None)


class _EntryError(Exception):
    """A problem with one entry; the parser prefixes the entry's name."""


def _bound(entry: dict, key: str, number_kind: Kind, name: str, integer: bool):
    """The entry's `min` or `max`, checked against the gate's declaration of `name`."""
    if key not in entry or entry[key] is None:
        raise _EntryError(f"'{key}' is missing (a {'integer' if integer else 'continuous'} range needs min and max)")
    given = entry[key]
    if isinstance(given, bool) or isinstance(given, (list, dict)):
        raise _EntryError(f"'{key}' = {given!r} is not a number")
    shape = Int() if integer else Float()
    try:
        number = shape.parse(decode_value(given))
    except InvalidValue:
        raise _EntryError(f"'{key}' = {given!r} is not {'an integer' if integer else 'a number'}") from None
    try:
        number_kind.parse(number)
    except InvalidValue as error:
        raise _EntryError(f"'{key}': {Hyperparameter(name, given).problem(error)}") from None
    return number


def _number_range(name: str, kind_name: str, entry: dict, declared: Kind) -> ParameterRange:
    number_kind = _numeric_kind(declared)
    integer = kind_name == "integer"
    if number_kind is None:
        raise _EntryError(f"a {kind_name} range needs a number hyperparameter, and '{name}' takes "
                          f"{declared.allowed}; use type categorical")
    if integer and not isinstance(number_kind, Int):
        raise _EntryError(f"'{name}' takes {number_kind.allowed}, not only integers; use type continuous")
    if not integer and isinstance(number_kind, Int):
        raise _EntryError(f"'{name}' takes {number_kind.allowed}; use type integer")
    low = _bound(entry, "min", number_kind, name, integer)
    high = _bound(entry, "max", number_kind, name, integer)
    if low >= high:
        raise _EntryError(f"empty range: min ({low}) must be below max ({high}); "
                          "a fixed value belongs in the static hyperparameters")
    scaling = _normalized_scaling(entry.get("scaling", "auto"))
    if scaling is None:
        raise _EntryError(f"unknown scaling {entry.get('scaling')!r}; allowed: {', '.join(SCALINGS)}")
    if integer and scaling not in _INTEGER_SCALINGS:
        raise _EntryError(f"scaling {scaling} is for continuous ranges only; allowed: {', '.join(_INTEGER_SCALINGS)}")
    if scaling == "logarithmic" and low <= 0:
        raise _EntryError(f"scaling logarithmic needs min > 0 (min is {low})")
    if scaling == "reverse_logarithmic" and not (low >= 0 and high < 1):
        raise _EntryError(f"scaling reverse_logarithmic needs 0 <= min and max < 1 (min is {low}, max is {high})")
    if not integer:
        low, high = float(low), float(high)
    return ParameterRange(name, kind_name, low, high, None, scaling)


def _categorical_range(name: str, entry: dict, declared: Kind) -> ParameterRange:
    given = entry.get("values")
    if not isinstance(given, list):
        raise _EntryError("'values' must be a list of values" if "values" in entry else "'values' is missing")
    if not given:
        raise _EntryError("'values' is empty")
    texts, problems = [], []
    for value in given:
        if isinstance(value, (list, dict)):
            raise _EntryError(f"value {value!r} is not a single value")
        text = value_text(value)
        try:
            declared.parse(decode_value(text))
        except InvalidValue as error:
            problems.append(Hyperparameter(name, value).problem(error))
        texts.append(text)
    if problems:
        raise _EntryError("; ".join(problems))
    duplicates = sorted({text for text in texts if texts.count(text) > 1})
    if duplicates:
        raise _EntryError(f"value {duplicates[0]!r} is listed twice")
    return ParameterRange(name, "categorical", None, None, tuple(texts), "auto")


def _parse_entry(name: str, entry, declared: Kind) -> ParameterRange:
    if not isinstance(entry, dict):
        raise _EntryError(f"must be a mapping such as {{type: continuous, min: ..., max: ...}}, got {entry!r}")
    kind_name = entry.get("type")
    if kind_name is None:
        raise _EntryError(f"'type' is missing; allowed: {', '.join(KINDS)}")
    normalized = str(kind_name).strip().lower()
    if normalized not in KINDS:
        raise _EntryError(f"unknown type {kind_name!r}; allowed: {', '.join(KINDS)}")
    unknown = [str(key) for key in entry if key not in _ENTRY_KEYS[normalized]]
    if unknown:
        raise _EntryError(f"unknown key '{unknown[0]}' for a {normalized} range; "
                          f"allowed: {', '.join(_ENTRY_KEYS[normalized])}")
    if normalized == "categorical":
        return _categorical_range(name, entry, declared)
    return _number_range(name, normalized, entry, declared)


def _name_problem(name: str, declared: Dict[str, Kind]) -> Optional[str]:
    if is_reserved(name):
        return f"'{name}' is reserved by SageMaker, not a hyperparameter to search"
    if name in ALIASES:
        return f"'{name}' is another name of '{ALIASES[name]}'; range '{ALIASES[name]}' instead"
    if name not in declared:
        return _unknown_key_message(name)
    if name in NOT_SEARCHABLE:
        return f"'{name}' cannot be searched: {NOT_SEARCHABLE[name]}"
    if name in _compat_names():
        return f"'{name}' cannot be searched: it has no effect here (the CNN model is not supported)"
    return None


def parse_search_space(mapping: dict, source: str) -> List[ParameterRange]:
    """The ranges of a search space mapping `{name: {type: ..., ...}}`, in the file's order.

    Raises `HyperparameterError` naming `source` (the file) and every faulty entry.
    """
    if not isinstance(mapping, dict):
        _raise_if_errors([f"a search space must be a mapping from hyperparameter names to ranges, "
                          f"got {type(mapping).__name__}"], source)
    if not mapping:
        _raise_if_errors(["the search space has no ranges"], source)
    declared, ranges, errors = declared_kinds(), [], []
    for key, entry in mapping.items():
        name = str(key)
        problem = _name_problem(name, declared)
        if problem:
            errors.append(f"entry '{name}': {problem}")
            continue
        try:
            ranges.append(_parse_entry(name, entry, declared[name]))
        except _EntryError as error:
            errors.append(f"entry '{name}': {error}")
    _raise_if_errors(errors, source)
    return ranges


def _read_mapping(path: str):
    """The file's content as Python values; UserError with the parser's position when it does not parse."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".json", ".yaml", ".yml"):
        raise UserError(f"{path}: a search space file must end in .json, .yaml or .yml")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if extension == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise UserError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") \
                from None
    import yaml  # only YAML files need it
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"{path}: not valid YAML ({where}{problem})") from None


def load_search_space(path) -> List[ParameterRange]:
    """The ranges of the search space file at `path` (.json, .yaml or .yml)."""
    path = os.fspath(path)
    return parse_search_space(_read_mapping(path), source=path)


def check_static(ranges: List[ParameterRange], static: dict, source: str) -> None:
    """Refuse static hyperparameters (`static`, from `source`) that are also ranged (directly or by an alias)."""
    ranged = {r.name for r in ranges}
    clashes = [key for key in static if ALIASES.get(key, key) in ranged]
    if clashes:
        _raise_if_errors([f"hyperparameter '{key}' is both static and in the search space; remove one"
                          for key in clashes], source)


def _probe_values(parameter_range: ParameterRange) -> Tuple[str, ...]:
    """Values that stand for a range when checking combinations: its ends (and min + 1 of an integer range,
    which catches a parity rule such as the even rnn_num_hidden), or every categorical value."""
    if parameter_range.kind == "categorical":
        return parameter_range.values
    if parameter_range.kind == "integer":
        return tuple(value_text(v) for v in sorted({parameter_range.low, parameter_range.low + 1,
                                                    parameter_range.high}))
    return value_text(parameter_range.low), value_text(parameter_range.high)


def check_combinations(ranges: List[ParameterRange], static: dict, source: str) -> None:
    """Check, through the gate, the static hyperparameters combined with the ranges' values.

    The rules between hyperparameters (e.g. momentum only with sgd, an even rnn_num_hidden) cannot be checked
    per entry. Each range's probe values are tried with every other range at its first probe value; the first
    failing combination is reported, naming the entry. Catches the common mistakes before any trial runs.
    """
    first = {r.name: _probe_values(r)[0] for r in ranges}
    try:
        parse_hyperparameters({**static, **first})
    except HyperparameterError as error:
        raise HyperparameterError(f"{source}: the static hyperparameters with every range at its first value: "
                                  f"{error.message}") from None
    for parameter_range in ranges:
        for value in _probe_values(parameter_range):
            combination = {**static, **first, parameter_range.name: value}
            try:
                parse_hyperparameters(combination)
            except HyperparameterError as error:
                raise HyperparameterError(
                    f"{source}: entry '{parameter_range.name}' = {value!r} with the static hyperparameters: "
                    f"{error.message}") from None


def check_objective_reported(objective: str, ranges: List[ParameterRange], static: dict, source: str) -> None:
    """validation:bleu needs BLEU at every checkpoint, which the job computes only with bleu_sample_size != 0
    (default 0): refuse a static value of 0, or a range that can give 0. Other objectives are always reported."""
    if objective != "validation:bleu":
        return
    ranged = next((r for r in ranges if r.name == "bleu_sample_size"), None)
    if ranged is None:
        given = {"bleu_sample_size": static["bleu_sample_size"]} if "bleu_sample_size" in static else {}
        can_be_zero = parse_hyperparameters(given, source=source).bleu_sample_size == 0
    elif ranged.kind == "categorical":
        can_be_zero = any(decode_value(value) == 0 for value in ranged.values)
    else:
        can_be_zero = ranged.low <= 0 <= ranged.high
    if can_be_zero:
        raise HyperparameterError(f"{source}: objective validation:bleu needs BLEU at every checkpoint: set "
                                  "bleu_sample_size to -1 (all validation sentences) or N >= 1")
