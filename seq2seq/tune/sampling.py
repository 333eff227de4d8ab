"""Search space ranges as Optuna distributions, and Optuna's parameters back as SageMaker hyperparameter strings.

    continuous, auto / linear    FloatDistribution(min, max)
    continuous, logarithmic      FloatDistribution(min, max, log=True)
    continuous, reverse_log.     parameter `one_minus_NAME` ~ FloatDistribution(1 - max, 1 - min, log=True),
                                 NAME = 1 - it (dense near 1: momentum, beta2); a min of 0 samples up to 1 - 0 = 1
    integer                      IntDistribution(min, max, log=scaling == logarithmic)
    categorical                  CategoricalDistribution(values as strings)

`auto` is linear here (SageMaker's Auto may choose log scaling itself; write the scaling to be sure).
"""

from typing import Dict, List

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from seq2seq.errors import UserError
from seq2seq.search_space import ParameterRange, declared_kinds, value_text
from seq2seq.typed_values import decode_value

REVERSE_PREFIX = "one_minus_"


def parameter_name(parameter_range: ParameterRange) -> str:
    """The name of the range's parameter in the Optuna study."""
    if parameter_range.scaling == "reverse_logarithmic":
        return REVERSE_PREFIX + parameter_range.name
    return parameter_range.name


def distribution(parameter_range: ParameterRange) -> BaseDistribution:
    """The Optuna distribution that samples `parameter_range` (see the module docstring)."""
    r = parameter_range
    if r.kind == "categorical":
        return CategoricalDistribution(list(r.values))
    if r.kind == "integer":
        return IntDistribution(int(r.low), int(r.high), log=r.scaling == "logarithmic")
    if r.scaling == "reverse_logarithmic":
        return FloatDistribution(1.0 - r.high, 1.0 - r.low, log=True)
    return FloatDistribution(r.low, r.high, log=r.scaling == "logarithmic")


def distributions(ranges: List[ParameterRange]) -> Dict[str, BaseDistribution]:
    """Optuna parameter name -> distribution, for `Study.ask`."""
    return {parameter_name(r): distribution(r) for r in ranges}


def hyperparameter_values(ranges: List[ParameterRange], params: dict) -> Dict[str, str]:
    """A trial's Optuna parameters as SageMaker hyperparameters (name -> string), in the space's order."""
    values = {}
    for r in ranges:
        value = params[parameter_name(r)]
        if r.scaling == "reverse_logarithmic":
            value = 1.0 - value
        if isinstance(value, float):
            value = float(f"{value:.12g}")  # 1 - (1 - 0.999) is 0.9990000000000001
        values[r.name] = value_text(value)
    return values


def _matching_choice(parameter_range: ParameterRange, given):
    """The categorical value that means the same as `given` to the gate ("false" for False, "64" for 64.0)."""
    kind = declared_kinds()[parameter_range.name]
    try:
        wanted = kind.parse(decode_value(value_text(given)))
    except ValueError:
        wanted = object()
    for choice in parameter_range.values:
        if kind.parse(decode_value(choice)) == wanted:
            return choice
    return None


def enqueued_params(ranges: List[ParameterRange], values: dict, source: str) -> dict:
    """Optuna parameters for `Study.enqueue_trial` from hyperparameter values (only the space's names are taken;
    the others stay as the base hyperparameters say). UserError naming `source` when a value is outside its range.
    """
    params = {}
    for r in ranges:
        if r.name not in values:
            continue
        given = values[r.name]
        if r.kind == "categorical":
            choice = _matching_choice(r, given)
            if choice is None:
                raise UserError(f"{source}: '{r.name}' = {given!r} is not one of the search space's values "
                                f"({', '.join(r.values)})")
            params[parameter_name(r)] = choice
            continue
        try:
            number = float(decode_value(value_text(given)))
        except (TypeError, ValueError):
            raise UserError(f"{source}: '{r.name}' = {given!r} is not a number") from None
        if not r.low <= number <= r.high:
            raise UserError(f"{source}: '{r.name}' = {given!r} is outside the search space's range "
                            f"[{r.low}, {r.high}]")
        if r.kind == "integer":
            if not number.is_integer():
                raise UserError(f"{source}: '{r.name}' = {given!r} is not an integer")
            number = int(number)
        params[parameter_name(r)] = 1.0 - number if r.scaling == "reverse_logarithmic" else number
    if not params:
        raise UserError(f"{source}: names none of the searched hyperparameters ({', '.join(r.name for r in ranges)})")
    return params
