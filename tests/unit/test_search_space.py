"""The search space file: JSON and YAML load alike; every faulty entry is refused by name, checked by the gate."""

import json

import pytest

from seq2seq.errors import HyperparameterError, UserError
from seq2seq.search_space import (
    SCALINGS, ParameterRange, check_combinations, check_objective_reported, check_static, load_search_space,
    parse_search_space,
)

SPACE = {
    "learning_rate": {"type": "continuous", "min": 0.0005, "max": 0.003, "scaling": "logarithmic"},
    "rnn_decoder_hidden_dropout": {"type": "continuous", "min": 0.0, "max": 0.4},
    "num_layers_encoder": {"type": "integer", "min": 1, "max": 2},
    "rnn_attention_type": {"type": "categorical", "values": ["mlp", "dot"]},
}
EXPECTED = [
    ParameterRange("learning_rate", "continuous", 0.0005, 0.003, None, "logarithmic"),
    ParameterRange("rnn_decoder_hidden_dropout", "continuous", 0.0, 0.4, None, "auto"),
    ParameterRange("num_layers_encoder", "integer", 1, 2, None, "auto"),
    ParameterRange("rnn_attention_type", "categorical", None, None, ("mlp", "dot"), "auto"),
]
YAML_TEXT = """\
learning_rate: {type: continuous, min: 0.0005, max: 0.003, scaling: logarithmic}
rnn_decoder_hidden_dropout: {type: continuous, min: 0.0, max: 0.4}
num_layers_encoder: {type: integer, min: 1, max: 2}
rnn_attention_type: {type: categorical, values: [mlp, dot]}
"""


def error_of(entry_name: str, entry) -> str:
    with pytest.raises(HyperparameterError) as info:
        parse_search_space({entry_name: entry}, "space.json")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("space.json: ")
    assert f"entry '{entry_name}'" in message
    return message


def test_json_and_yaml_files_give_the_same_ranges(tmp_path):
    json_path, yaml_path, yml_path = tmp_path / "s.json", tmp_path / "s.yaml", tmp_path / "s.yml"
    json_path.write_text(json.dumps(SPACE))
    yaml_path.write_text(YAML_TEXT)
    yml_path.write_text(YAML_TEXT)
    assert load_search_space(json_path) == EXPECTED
    assert load_search_space(str(yaml_path)) == EXPECTED
    assert load_search_space(yml_path) == EXPECTED
    assert isinstance(EXPECTED[2].low, int) and isinstance(load_search_space(json_path)[0].low, float)


def test_categorical_values_become_strings_as_sagemaker_passes_them():
    ranges = parse_search_space({"input_feeding": {"type": "categorical", "values": [True, False]},
                                 "batch_size": {"type": "categorical", "values": [32, 64]},
                                 "momentum": {"type": "categorical", "values": [None, 0.9]}}, "s")
    assert [r.values for r in ranges] == [("true", "false"), ("32", "64"), ("null", "0.9")]


def test_scaling_spellings_of_sagemaker_are_accepted():
    for spelling, expected in (("ReverseLogarithmic", "reverse_logarithmic"), ("Linear", "linear"),
                               ("auto", "auto"), ("reverse_logarithmic", "reverse_logarithmic")):
        entry = {"type": "continuous", "min": 0.9, "max": 0.999, "scaling": spelling}
        assert parse_search_space({"adam_beta2": entry}, "s")[0].scaling == expected
    assert SCALINGS == ("auto", "linear", "logarithmic", "reverse_logarithmic")


def test_bounds_written_as_text_are_numbers():
    # YAML 1.1 reads 5e-4 (no dot) as a string
    ranges = parse_search_space({"learning_rate": {"type": "continuous", "min": "5e-4", "max": "3e-3"}}, "s")
    assert (ranges[0].low, ranges[0].high) == (0.0005, 0.003)


def test_unknown_hyperparameter_suggests_a_close_name():
    message = error_of("learning_rat", {"type": "continuous", "min": 0.1, "max": 0.2})
    assert "unknown hyperparameter 'learning_rat'; did you mean 'learning_rate'?" in message


@pytest.mark.parametrize("name, reason", [
    ("devices", "hardware"), ("ps_port", "network"), ("cnn_num_hidden", "no effect"),
    ("sagemaker_program", "reserved"), ("epochs", "'max_num_epochs'"), ("tensorboard", "event files"),
])
def test_settings_that_make_no_sense_to_search_are_refused_with_a_reason(name, reason):
    message = error_of(name, {"type": "categorical", "values": ["1"]})
    assert reason in message


@pytest.mark.parametrize("entry, words", [
    ({"min": 1, "max": 2}, "'type' is missing"),
    ({"type": "float", "min": 1, "max": 2}, "unknown type 'float'"),
    ({"type": "integer", "max": 2}, "'min' is missing"),
    ({"type": "integer", "min": 1}, "'max' is missing"),
    ({"type": "integer", "min": 2, "max": 2}, "empty range: min (2) must be below max (2)"),
    ({"type": "integer", "min": 3, "max": 2}, "empty range"),
    ({"type": "integer", "min": 1.5, "max": 2}, "'min' = 1.5 is not an integer"),
    ({"type": "integer", "min": True, "max": 2}, "is not a number"),
    ({"type": "integer", "min": 0, "max": 2}, "'min': hyperparameter 'num_layers_encoder': invalid value 0; "
                                              "allowed: integer >= 1"),
    ({"type": "continuous", "min": 1, "max": 2}, "use type integer"),
    ({"type": "integer", "min": 1, "max": 2, "scaling": "cubic"}, "unknown scaling 'cubic'"),
    ({"type": "integer", "min": 1, "max": 4, "scaling": "reverse_logarithmic"}, "continuous ranges only"),
    ({"type": "integer", "min": 1, "max": 2, "step": 1}, "unknown key 'step'"),
    ({"type": "categorical", "values": []}, "'values' is empty"),
    ({"type": "categorical"}, "'values' is missing"),
    ({"type": "categorical", "values": "1,2"}, "'values' must be a list"),
    ({"type": "categorical", "values": [1, 0]}, "invalid value 0; allowed: integer >= 1"),
    ({"type": "categorical", "values": [1, 1]}, "'1' is listed twice"),
    ({"type": "categorical", "values": [1], "scaling": "linear"}, "unknown key 'scaling'"),
    ("1..2", "must be a mapping"),
])
def test_faulty_integer_and_categorical_entries_are_named(entry, words):
    assert words in error_of("num_layers_encoder", entry)


@pytest.mark.parametrize("name, entry, words", [
    ("learning_rate", {"type": "continuous", "min": 0.0, "max": 0.1},
     "'min': hyperparameter 'learning_rate': invalid value 0.0; allowed: number > 0.0"),
    ("learning_rate", {"type": "integer", "min": 1, "max": 2}, "use type continuous"),
    ("rnn_decoder_hidden_dropout", {"type": "continuous", "min": 0.1, "max": 1.0}, "allowed: number in [0.0, 1.0)"),
    ("rnn_decoder_hidden_dropout", {"type": "continuous", "min": 0.0, "max": 0.5, "scaling": "logarithmic"},
     "scaling logarithmic needs min > 0"),
    ("momentum", {"type": "continuous", "min": 0.5, "max": 0.9, "scaling": "reverse_logarithmic"}, None),
    ("label_smoothing", {"type": "continuous", "min": -0.1, "max": 0.5, "scaling": "reverse_logarithmic"},
     "invalid value -0.1"),
    ("weight_decay", {"type": "continuous", "min": 0.0, "max": 1.0, "scaling": "reverse_logarithmic"},
     "reverse_logarithmic needs 0 <= min and max < 1"),
    ("rnn_cell_type", {"type": "continuous", "min": 0.0, "max": 1.0}, "needs a number hyperparameter"),
    ("rnn_cell_type", {"type": "categorical", "values": ["lstm", "rnn"]},
     "invalid value 'rnn'; allowed: lstm, gru"),
    ("input_feeding", {"type": "categorical", "values": ["yes"]}, "allowed: true or false"),
])
def test_faulty_continuous_and_categorical_entries_are_named(name, entry, words):
    if words is None:  # a valid entry in this table: the optional momentum searched in (0.5, 0.9)
        assert parse_search_space({name: entry}, "s")[0].scaling == "reverse_logarithmic"
        return
    assert words in error_of(name, entry)


def test_every_problem_of_a_file_is_reported_at_once():
    with pytest.raises(HyperparameterError) as info:
        parse_search_space({"batch_sise": {"type": "integer", "min": 1, "max": 2},
                            "beam_size": {"type": "integer", "min": 5, "max": 1}}, "s.yaml")
    assert str(info.value).startswith("s.yaml: 2 hyperparameter errors: (1) entry 'batch_sise'")
    assert "(2) entry 'beam_size': empty range" in str(info.value)


@pytest.mark.parametrize("mapping, words", [({}, "no ranges"), ([1], "must be a mapping")])
def test_a_space_that_is_not_a_mapping_of_ranges_is_refused(mapping, words):
    with pytest.raises(HyperparameterError, match=words):
        parse_search_space(mapping, "s.json")


@pytest.mark.parametrize("file_name, text, words", [
    ("s.json", '{"learning_rate": {"type": "continuous",, }}', 
     "s.json: not valid JSON (line 1, column 41: Expecting property name"),
    ("s.yaml", "learning_rate: {type: continuous\nbatch_size: [1", "s.yaml: not valid YAML (line 2, column"),
    ("s.txt", "{}", "must end in .json, .yaml or .yml"),
])
def test_files_that_do_not_parse_name_the_position(tmp_path, file_name, text, words):
    path = tmp_path / file_name
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_search_space(path)
    assert words in str(info.value).replace(str(tmp_path) + "/", "")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(UserError, match="absent.json: cannot be read"):
        load_search_space(tmp_path / "absent.json")


def test_static_hyperparameters_must_not_also_be_ranged():
    check_static(EXPECTED, {"batch_size": "32", "max_num_epochs": "3"}, "base.json")
    with pytest.raises(HyperparameterError, match="base.json: hyperparameter 'learning_rate' is both static"):
        check_static(EXPECTED, {"learning_rate": "0.001"}, "base.json")
    epochs_range = parse_search_space({"max_num_epochs": {"type": "integer", "min": 1, "max": 3}}, "s")
    with pytest.raises(HyperparameterError, match="'epochs' is both static"):
        check_static(epochs_range, {"epochs": "2"}, "base.json")


def test_rules_between_hyperparameters_are_checked_with_the_static_ones():
    check_combinations(EXPECTED, {"rnn_num_hidden": "64"}, "s")
    hidden = parse_search_space({"rnn_num_hidden": {"type": "integer", "min": 64, "max": 128}}, "s")
    with pytest.raises(HyperparameterError, match="entry 'rnn_num_hidden' = '65'.*must be even"):
        check_combinations(hidden, {}, "s")
    momentum = parse_search_space({"momentum": {"type": "continuous", "min": 0.5, "max": 0.9}}, "s")
    check_combinations(momentum, {"optimizer_type": "sgd"}, "s")
    with pytest.raises(HyperparameterError, match="hyperparameter .momentum. = 0.5: only allowed with optimizer_type"):
        check_combinations(momentum, {}, "s")  # every sampled momentum fails with the default adam
    with pytest.raises(HyperparameterError, match="the static hyperparameters with every range at its first value: "
                                                  "unknown hyperparameter 'batch_sise'"):
        check_combinations(EXPECTED, {"batch_sise": "3"}, "s")


def test_the_bleu_objective_needs_bleu_at_every_checkpoint():
    check_objective_reported("validation:perplexity", EXPECTED, {}, "static")
    check_objective_reported("validation:bleu", EXPECTED, {"bleu_sample_size": "-1"}, "static")
    with pytest.raises(HyperparameterError, match="static: objective validation:bleu needs BLEU"):
        check_objective_reported("validation:bleu", EXPECTED, {}, "static")  # the default is 0
    for entry in ({"type": "integer", "min": 0, "max": 100}, {"type": "categorical", "values": [100, 0]}):
        ranged = parse_search_space({"bleu_sample_size": entry}, "s")
        with pytest.raises(HyperparameterError, match="needs BLEU"):
            check_objective_reported("validation:bleu", ranged, {}, "s")
    check_objective_reported("validation:bleu", parse_search_space(
        {"bleu_sample_size": {"type": "categorical", "values": [-1, 100]}}, "s"), {}, "s")
