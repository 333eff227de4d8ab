"""Value kinds of hyperparameters: how one SageMaker value is decoded, checked and described.

A kind's `parse(value)` takes a value after `decode_value` (a str, int, float, bool or None) and
returns the typed value, or raises `ValueError`; `allowed` describes the accepted values in words.
"""

import json
import math
import re

_NONE_WORDS = ("none", "null", "")
_TRUE_WORDS = ("true",)
_FALSE_WORDS = ("false",)
_MAX_QUOTING_LEVELS = 4


def decode_value(raw):
    """Undo SageMaker's string encoding: `"64"` -> 64, `"\\"adam\\""` -> "adam", `"True"` -> "True".

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


class Kind:
    """Base of the value kinds."""

    allowed = ""

    def parse(self, value):
        raise NotImplementedError


class Int(Kind):
    """An integer in [low, high], minus `exclude`. Accepts 64, 64.0, "64"; rejects booleans."""

    def __init__(self, low: int = None, high: int = None, exclude: tuple = (), allowed: str = None):
        self.low, self.high, self.exclude = low, high, tuple(exclude)
        self.allowed = allowed or _range_text("integer", low, high, False, False, exclude)

    def parse(self, value):
        number = _to_int(value)
        if number is None or number in self.exclude or not _in_range(number, self.low, self.high, False, False):
            raise ValueError(self.allowed)
        return number


class Float(Kind):
    """A finite number in the range [low, high]; `low_open`/`high_open` exclude the bounds."""

    def __init__(self, low: float = None, high: float = None, low_open: bool = False, high_open: bool = False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.allowed = _range_text("number", low, high, low_open, high_open, ())

    def parse(self, value):
        number = _to_float(value)
        if number is None or not _in_range(number, self.low, self.high, self.low_open, self.high_open):
            raise ValueError(self.allowed)
        return number


class Bool(Kind):
    """true or false, in any letter case; also 1 and 0."""

    allowed = "true or false"

    def parse(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE_WORDS + _FALSE_WORDS:
            return value.lower() in _TRUE_WORDS
        raise ValueError(self.allowed)


class Choice(Kind):
    """One of a fixed set of words, matched regardless of letter case; returns the canonical spelling."""

    def __init__(self, *choices: str):
        self.choices = choices
        self.allowed = ", ".join(choices)

    def parse(self, value):
        if isinstance(value, str):
            for choice in self.choices:
                if value.lower() == choice.lower():
                    return choice
        raise ValueError(self.allowed)


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
        raise ValueError(self.allowed)


class Maybe(Kind):
    """Either unset (None, "none", "null" or "") or a value of the inner kind."""

    def __init__(self, inner: Kind):
        self.inner = inner
        self.allowed = f"none or {inner.allowed}"

    def parse(self, value):
        if value is None or (isinstance(value, str) and value.lower() in _NONE_WORDS):
            return None
        try:
            return self.inner.parse(value)
        except ValueError:
            raise ValueError(self.allowed) from None


def _to_int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value)
    number = _to_float(value)
    if number is not None and number.is_integer():
        return int(number)
    return None


def _to_float(value):
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _in_range(number, low, high, low_open, high_open) -> bool:
    if low is not None and (number < low or (low_open and number == low)):
        return False
    if high is not None and (number > high or (high_open and number == high)):
        return False
    return True


def _range_text(noun, low, high, low_open, high_open, exclude) -> str:
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        text = f"{noun} in {left}{low}, {high}{right}"
    elif low is not None:
        text = f"{noun} {'>' if low_open else '>='} {low}"
    elif high is not None:
        text = f"{noun} {'<' if high_open else '<='} {high}"
    else:
        text = noun
    if exclude:
        text += " except " + ", ".join(str(e) for e in exclude)
    return text
