"""Typed values from the outside: the one parser behind hyperparameters, request configuration and
environment settings.

A value arrives as a string (an environment variable, a SageMaker hyperparameter) or as a JSON value
(a field of a request's `configuration`). A kind turns it into a typed value or raises `InvalidValue`:

    Int(low, high)      64, 64.0, "64", " 64 ", "6.4e1"; never a boolean
    Float(low, high)    a finite number or its text; `low_open`/`high_open` exclude the bounds
    Bool()              true/false (any letter case), 1/0, and their strings
    Choice(*words)      one of the words, in any letter case; gives the canonical spelling
    Pattern(regex, ..)  text matching a regular expression (lower-cased, spaces removed)
    Maybe(kind)         unset (None, "none", "null", "") or a value of `kind`

A source names where the value came from and words the error for the people who set it:

    Hyperparameter("batch_size")      hyperparameter 'batch_size': invalid value '0'; allowed: integer >= 1
    RequestField("configuration.beam_size")
                                      configuration.beam_size: 1000 is outside the allowed range [1, 64]
    EnvironmentVariable("SAGEMAKER_BIND_TO_PORT")
                                      environment variable SAGEMAKER_BIND_TO_PORT='http' is not an integer

`parse(kind, value, source)` and `read_environment(env, name, kind, default)` raise UserError with
that message. Nothing here imports MXNet or Flask: the gunicorn master reads its settings with it.
"""
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from seq2seq.errors import UserError

_NONE_WORDS = ("none", "null", "")
_TRUE_WORDS = ("true", "1")
_FALSE_WORDS = ("false", "0")
_MAX_QUOTING_LEVELS = 4
LOW, HIGH = "low", "high"


class InvalidValue(ValueError):
    """`value` is not a value of `kind`. For a number beyond the kind's bounds, `number` holds it and
    `bound` says which bound it crossed (LOW or HIGH); both are None when the value is of the wrong type."""

    def __init__(self, kind: "Kind", value: Any, number=None, bound: Optional[str] = None):
        super().__init__(kind.allowed)
        self.kind, self.value, self.number, self.bound = kind, value, number, bound


class Kind:
    """Base of the kinds; `allowed` describes the accepted values in words."""

    allowed = ""

    def parse(self, value):
        raise NotImplementedError


class _Number(Kind):
    """A number in the range [low, high]; `low_open`/`high_open` exclude the bounds."""

    noun = article = ""

    def __init__(self, low=None, high=None, low_open: bool = False, high_open: bool = False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.allowed = f"{self.noun} {self.bounds_text()}".rstrip()

    def convert(self, value):
        """The number `value` stands for, or None."""
        raise NotImplementedError

    def parse(self, value):
        number = self.convert(value)
        if number is None:
            raise InvalidValue(self, value)
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            raise InvalidValue(self, value, number, LOW)
        if self.high is not None and (number > self.high or (self.high_open and number == self.high)):
            raise InvalidValue(self, value, number, HIGH)
        return number

    def interval(self, show=str) -> str:
        """The bounds: "[1, 64]", "(0.0, 1.0)", ">= 1", "> 0.0", "<= 10" or "" (numbers written by `show`)."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{left}{show(self.low)}, {show(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {show(self.low)}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {show(self.high)}"
        return ""

    def bounds_text(self, show=str) -> str:
        """The bounds after the noun: "in [1, 64]", ">= 1", or ""."""
        two_sided = self.low is not None and self.high is not None
        return f"in {self.interval(show)}" if two_sided else self.interval(show)


class Int(_Number):
    """An integer in [low, high], minus `exclude`. Accepts 64, 64.0, "64"; rejects booleans."""

    noun, article = "integer", "an"

    def __init__(self, low: int = None, high: int = None, exclude: tuple = (), allowed: str = None):
        super().__init__(low, high)
        self.exclude = tuple(exclude)
        if exclude:
            self.allowed += " except " + ", ".join(str(e) for e in exclude)
        self.allowed = allowed or self.allowed

    def convert(self, value):
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
            return int(value)
        number = _to_float(value)
        return int(number) if number is not None and number.is_integer() else None

    def parse(self, value):
        number = super().parse(value)
        if number in self.exclude:
            raise InvalidValue(self, value)
        return number


class Float(_Number):
    """A finite number in [low, high]; `low_open`/`high_open` exclude the bounds. Rejects booleans."""

    noun, article = "number", "a"

    def convert(self, value):
        return _to_float(value)


class Bool(Kind):
    """true or false, in any letter case; also 1 and 0, as numbers or text."""

    allowed = "true or false"

    def parse(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
            return value.strip().lower() in _TRUE_WORDS
        raise InvalidValue(self, value)


class Choice(Kind):
    """One of a fixed set of words, matched regardless of letter case; returns the canonical spelling."""

    def __init__(self, *choices: str):
        self.choices = choices
        self.allowed = ", ".join(choices)

    def parse(self, value):
        if isinstance(value, str):
            for choice in self.choices:
                if value.strip().lower() == choice.lower():
                    return choice
        raise InvalidValue(self, value)


class Pattern(Kind):
    """A string matching a regular expression (after lower-casing and removing spaces)."""

    def __init__(self, pattern: str, allowed: str):
        self.pattern = re.compile(pattern)
        self.allowed = allowed

    def parse(self, value):
        if isinstance(value, str):
            text = value.lower().replace(" ", "")
            if self.pattern.fullmatch(text):
                return text
        raise InvalidValue(self, value)


class Maybe(Kind):
    """Either unset (None, "none", "null" or "") or a value of the inner kind."""

    def __init__(self, inner: Kind):
        self.inner = inner
        self.allowed = f"none or {inner.allowed}"

    def parse(self, value):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            return None
        try:
            return self.inner.parse(value)
        except InvalidValue:
            raise InvalidValue(self, value) from None


def _to_float(value):
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# ----- sources: who set the value, and how its error reads -----

@dataclass(frozen=True)
class Hyperparameter:
    """A SageMaker hyperparameter; `given` is its value as the user wrote it (before `decode_value`)."""

    name: str
    given: Any = None

    def problem(self, error: InvalidValue) -> str:
        shown = error.value if self.given is None else self.given
        return f"hyperparameter '{self.name}': invalid value {shown!r}; allowed: {error.kind.allowed}"


@dataclass(frozen=True)
class RequestField:
    """A field of a request body, named by its path: "configuration.beam_size",
    "instances[2].configuration.beam_size"."""

    path: str

    def problem(self, error: InvalidValue) -> str:
        kind = error.kind
        if error.bound is not None:
            return f"{self.path}: {_short(error.number)} is outside the allowed range {kind.interval(_short)}"
        if isinstance(kind, _Number):
            expected = f"{kind.article} {kind.noun} {kind.bounds_text(_short)}".rstrip()
        elif isinstance(kind, Bool):
            expected = 'true or false (or the strings "true"/"false")'
        else:
            expected = kind.allowed
        return f"{self.path}: expected {expected}, got {error.value!r}"


@dataclass(frozen=True)
class EnvironmentVariable:
    """An environment variable of the server (SageMaker's or ours)."""

    name: str

    def problem(self, error: InvalidValue) -> str:
        kind = error.kind
        head = f"environment variable {self.name}={error.value!r}"
        if error.bound == LOW:
            return f"{head} must be {'more than' if kind.low_open else 'at least'} {kind.low}"
        if error.bound == HIGH:
            return f"{head} must be {'less than' if kind.high_open else 'at most'} {kind.high}"
        if isinstance(kind, _Number):
            return f"{head} is not {kind.article} {kind.noun}"
        if isinstance(kind, Choice):
            return f"{head} must be one of {kind.allowed}"
        if isinstance(kind, Bool):
            return f"{head} must be 1 or 0 (or true or false)"
        return f"{head} must be {kind.allowed}"


def _short(number) -> str:
    """Integers as they are, other numbers in %g form (0.5, 10, 1e-05)."""
    return str(number) if isinstance(number, int) else f"{number:g}"


def parse(kind: Kind, value: Any, source) -> Any:
    """`value` as a value of `kind`; UserError (status 400) worded by `source` when it is not one."""
    try:
        return kind.parse(value)
    except InvalidValue as error:
        raise UserError(source.problem(error)) from None


def read_environment(env: Mapping[str, str], name: str, kind: Kind, default: Any = None) -> Any:
    """The variable `name` of `env` as a value of `kind`; `default` when it is unset or blank."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    return parse(kind, raw, EnvironmentVariable(name))


def decode_value(raw):
    """Undo SageMaker's string encoding of a hyperparameter: `"64"` -> 64, `"\\"adam\\""` -> "adam",
    `"True"` -> "True".

    Strings are tried as JSON (as the SageMaker training toolkit does) and kept as text when that
    fails or yields a list or object. A JSON string that is itself still quoted (a value encoded
    twice, e.g. `json.dumps` by the user and again by the SDK) is decoded again. Non-strings are
    returned as they are.
    """
    for _ in range(_MAX_QUOTING_LEVELS):
        if not isinstance(raw, str):
            return raw
        text = raw.strip()
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, (list, dict)):
            return text
        if not (isinstance(value, str) and value.strip().startswith('"')):
            return value.strip() if isinstance(value, str) else value
        raw = value
    return raw
