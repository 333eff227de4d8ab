"""seq2seq.typed_values: each kind, its bounds, and errors that name the field and where it came from."""
import pytest

from seq2seq.errors import UserError
from seq2seq.typed_values import (
    HIGH, LOW, Bool, Choice, EnvironmentVariable, Float, Hyperparameter, Int, InvalidValue, Maybe, Pattern,
    RequestField, parse, read_environment,
)


def invalid(kind, value) -> InvalidValue:
    with pytest.raises(InvalidValue) as info:
        kind.parse(value)
    return info.value


@pytest.mark.parametrize("value, expected", [
    (64, 64), (64.0, 64), ("64", 64), (" 64 ", 64), ("+64", 64), ("64.0", 64), ("6.4e1", 64), (-3, -3),
])
def test_int_accepts_integers_and_their_text(value, expected):
    number = Int().parse(value)
    assert number == expected and type(number) is int


@pytest.mark.parametrize("value", [True, False, None, "", "sixty", "6.5", 6.5, "nan", float("inf"), [1], {}])
def test_int_rejects_other_values_as_the_wrong_type(value):
    error = invalid(Int(), value)
    assert (error.value, error.number, error.bound) == (value, None, None)


@pytest.mark.parametrize("value, expected", [
    (0.5, 0.5), ("0.5", 0.5), (" 1e-3 ", 0.001), (2, 2.0), ("-7", -7.0),
])
def test_float_accepts_finite_numbers_and_their_text(value, expected):
    number = Float().parse(value)
    assert number == pytest.approx(expected) and type(number) is float


@pytest.mark.parametrize("value", [True, None, "fast", "nan", "inf", "-inf", float("nan"), [0.5]])
def test_float_rejects_other_values_and_non_finite_numbers(value):
    assert invalid(Float(), value).bound is None


def test_bounds_are_inclusive_unless_open():
    assert Int(1, 64).parse(1) == 1 and Int(1, 64).parse("64") == 64
    for value, number, bound in ((0, 0, LOW), ("65", 65, HIGH)):
        error = invalid(Int(1, 64), value)
        assert (error.number, error.bound) == (number, bound)
    kind = Float(0.0, 1.0, low_open=True, high_open=True)
    assert kind.parse("0.5") == 0.5
    assert invalid(kind, 0).bound == LOW and invalid(kind, "1.0").bound == HIGH
    assert Float(0.0, 1.0).parse(1) == 1.0


@pytest.mark.parametrize("kind, allowed", [
    (Int(), "integer"), (Int(1), "integer >= 1"), (Int(high=9), "integer <= 9"), (Int(0, 10), "integer in [0, 10]"),
    (Int(-1, exclude=(0,)), "integer >= -1 except 0"), (Int(-1, allowed="-1 or more"), "-1 or more"),
    (Float(), "number"), (Float(0.0, low_open=True), "number > 0.0"), (Float(high=1.0, high_open=True), "number < 1.0"),
    (Float(0.0, 1.0, high_open=True), "number in [0.0, 1.0)"), (Bool(), "true or false"),
    (Choice("adam", "sgd"), "adam, sgd"), (Maybe(Int(1)), "none or integer >= 1"),
])
def test_allowed_describes_the_kind(kind, allowed):
    assert kind.allowed == allowed


def test_excluded_integers_are_rejected():
    kind = Int(-1, exclude=(0,))
    assert kind.parse("-1") == -1 and kind.parse(5) == 5
    assert invalid(kind, "0").bound is None


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False), ("true", True), (" TRUE ", True), ("False", False),
    ("1", True), ("0", False),
])
def test_bool_accepts_words_and_ones_and_zeros(value, expected):
    assert Bool().parse(value) is expected


@pytest.mark.parametrize("value", ["yes", "2", 2, 1.0, None, ""])
def test_bool_rejects_anything_else(value):
    invalid(Bool(), value)


def test_choice_matches_any_letter_case_and_gives_the_canonical_spelling():
    kind = Choice("SINGLE_RECORD", "MULTI_RECORD")
    assert kind.parse(" single_record ") == "SINGLE_RECORD"
    invalid(kind, "ALL")
    invalid(kind, 1)


def test_pattern_lower_cases_and_drops_spaces():
    kind = Pattern(r"gpu:[0-9]+(,[0-9]+)*", "gpu:I,J,...")
    assert kind.parse("GPU:0, 1") == "gpu:0,1"
    invalid(kind, "tpu:0")


@pytest.mark.parametrize("value", [None, "none", "NULL", "", "  "])
def test_maybe_reads_unset_as_none(value):
    assert Maybe(Int(1)).parse(value) is None


def test_maybe_passes_other_values_to_its_kind():
    assert Maybe(Int(1)).parse("7") == 7
    assert invalid(Maybe(Int(1)), "0").kind.allowed == "none or integer >= 1"


# ----- the error messages of each source -----

def message(kind, value, source) -> str:
    with pytest.raises(UserError) as info:
        parse(kind, value, source)
    assert info.value.status == 400
    return info.value.message


@pytest.mark.parametrize("kind, value, given, expected", [
    (Int(1), 0, "0", "hyperparameter 'batch_size': invalid value '0'; allowed: integer >= 1"),
    (Int(1), "sixty", None, "hyperparameter 'batch_size': invalid value 'sixty'; allowed: integer >= 1"),
    (Float(0.0, low_open=True), "fast", '"fast"',
     "hyperparameter 'batch_size': invalid value '\"fast\"'; allowed: number > 0.0"),
])
def test_hyperparameter_errors_show_the_value_as_written(kind, value, given, expected):
    assert message(kind, value, Hyperparameter("batch_size", given)) == expected


@pytest.mark.parametrize("kind, value, expected", [
    (Int(1, 64), 1000, "configuration.beam_size: 1000 is outside the allowed range [1, 64]"),
    (Int(1, 64), "wide", "configuration.beam_size: expected an integer in [1, 64], got 'wide'"),
    (Int(1, 64), 2.5, "configuration.beam_size: expected an integer in [1, 64], got 2.5"),
    (Float(0.0, 10.0), "12", "configuration.beam_size: 12 is outside the allowed range [0, 10]"),
    (Float(0.0, 10.0), "nan", "configuration.beam_size: expected a number in [0, 10], got 'nan'"),
    (Bool(), "yes", 'configuration.beam_size: expected true or false (or the strings "true"/"false"), got \'yes\''),
])
def test_request_field_errors_name_the_path(kind, value, expected):
    assert message(kind, value, RequestField("configuration.beam_size")) == expected


def test_request_field_errors_name_the_instance():
    text = message(Int(1, 64), -1, RequestField("instances[3].configuration.beam_size"))
    assert text == "instances[3].configuration.beam_size: -1 is outside the allowed range [1, 64]"


@pytest.mark.parametrize("kind, raw, expected", [
    (Int(1, 65535), "http", "environment variable PORT='http' is not an integer"),
    (Int(1, 65535), "70000", "environment variable PORT='70000' must be at most 65535"),
    (Int(1), "0", "environment variable PORT='0' must be at least 1"),
    (Float(0.0), "six", "environment variable PORT='six' is not a number"),
    (Float(0.0), "-1", "environment variable PORT='-1' must be at least 0.0"),
    (Float(0.0, 1.0, low_open=True, high_open=True), "1", "environment variable PORT='1' must be less than 1.0"),
    (Float(0.0, 1.0, low_open=True), "0", "environment variable PORT='0' must be more than 0.0"),
    (Choice("SINGLE_RECORD", "MULTI_RECORD"), "ALL",
     "environment variable PORT='ALL' must be one of SINGLE_RECORD, MULTI_RECORD"),
    (Bool(), "yes", "environment variable PORT='yes' must be 1 or 0 (or true or false)"),
    (Pattern(r"cpu|gpu:[0-9]+", "cpu or gpu:<i>"), "tpu", "environment variable PORT='tpu' must be cpu or gpu:<i>"),
])
def test_environment_errors_name_the_variable_and_its_value(kind, raw, expected):
    assert message(kind, raw, EnvironmentVariable("PORT")) == expected


def test_read_environment_gives_the_default_for_unset_or_blank_variables():
    env = {"SET": " 12 ", "BLANK": "  ", "BAD": "x"}
    assert read_environment(env, "SET", Int(), 5) == 12
    assert read_environment(env, "BLANK", Int(), 5) == 5
    assert read_environment(env, "UNSET", Int(), None) is None
    with pytest.raises(UserError, match="environment variable BAD='x' is not an integer"):
        read_environment(env, "BAD", Int(), 5)
