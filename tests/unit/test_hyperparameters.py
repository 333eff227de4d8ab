"""The hyperparameter gate: encodings SageMaker uses, validation messages, reserved keys, round trips."""

import dataclasses
import json

import pytest

from seq2seq.errors import HyperparameterError, UserError
from seq2seq.hyperparameters import (
    Hyperparameters, documentation_rows, load_hyperparameters_file, names, parse_devices, parse_hyperparameters,
)
from seq2seq.typed_values import decode_value

# Amazon's documented defaults (developer guide, seq-2-seq-hyperparameters), the contract we keep.
AMAZON_DEFAULTS = {
    "batch_size": 64, "beam_size": 5, "bleu_sample_size": 0, "bucket_width": 10, "bucketing_enabled": True,
    "checkpoint_frequency_num_batches": 1000, "checkpoint_threshold": 3, "clip_gradient": 1.0,
    "cnn_activation_type": "glu", "cnn_hidden_dropout": 0.0, "cnn_kernel_width_decoder": 5,
    "cnn_kernel_width_encoder": 3, "cnn_num_hidden": 512, "decoder_type": "rnn", "encoder_type": "rnn",
    "embed_dropout_source": 0.0, "embed_dropout_target": 0.0, "fixed_rate_lr_half_life": 10,
    "learning_rate": 0.0003, "loss_type": "cross-entropy", "lr_scheduler_type": "plateau_reduce",
    "max_num_batches": -1, "max_num_epochs": None, "max_seq_len_source": 100, "max_seq_len_target": 100,
    "min_num_epochs": 0, "momentum": None, "num_embed_source": 512, "num_embed_target": 512,
    "num_layers_encoder": 1, "num_layers_decoder": 1, "optimized_metric": "perplexity", "optimizer_type": "adam",
    "plateau_reduce_lr_factor": 0.5, "plateau_reduce_lr_threshold": 3, "rnn_attention_in_upper_layers": True,
    "rnn_attention_num_hidden": None, "rnn_attention_type": "mlp", "rnn_cell_type": "lstm",
    "rnn_decoder_hidden_dropout": 0.0, "rnn_decoder_state_init": "last", "rnn_first_residual_layer": 2,
    "rnn_num_hidden": 1024, "rnn_residual_connections": False, "training_metric": "perplexity",
    "weight_decay": 0.0, "weight_init_scale": 2.34, "weight_init_type": "xavier", "xavier_factor_type": "in",
}
OUR_DEFAULTS = {
    "label_smoothing": 0.1, "length_penalty_alpha": 1.0, "length_penalty_beta": 0.0, "teacher_forcing_ratio": 1.0,
    "teacher_forcing_decay_batches": 0, "input_feeding": True, "weight_tying": False, "warmup_num_batches": 0,
    "gradient_clip_norm": -1.0, "devices": "auto", "seed": 13, "log_frequency_num_batches": 100,
    "precision": "fp32", "ps_port": 8000, "peer_timeout_seconds": 60.0,
    "fixed_param_strategy": "none", "freeze_embeddings_source": False, "freeze_embeddings_target": False,
    "shortlist_k": 50, "shortlist_frequent": 300,
    "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_epsilon": 1e-8, "adadelta_rho": 0.95, "adadelta_epsilon": 1e-6,
    "weight_init_sigma": 0.01, "rnn_h2h_init": "default", "layer_normalization": False,
    "weight_tying_type": "trg_softmax", "curriculum": "none", "curriculum_short_length": 20,
    "curriculum_fraction": 0.9, "curriculum_num_epochs": None, "average_checkpoints": 0, "tensorboard": True,
}


def error_of(raw: dict) -> HyperparameterError:
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters(raw)
    return info.value


def test_defaults_are_amazons_and_ours():
    values = parse_hyperparameters({}).to_dict()
    assert values == {**AMAZON_DEFAULTS, **OUR_DEFAULTS}
    assert set(names()) == set(AMAZON_DEFAULTS) | set(OUR_DEFAULTS)
    assert Hyperparameters() == parse_hyperparameters({})


@pytest.mark.parametrize("raw, expected", [
    ("64", 64), (" 0.5 ", 0.5), ("true", True), ("True", "True"), ("null", None), ("adam", "adam"),
    ('"adam"', "adam"), ('"\\"adam\\""', "adam"), ('" 64 "', "64"), ("[1, 2]", "[1, 2]"), ('{"a": 1}', '{"a": 1}'),
    (7, 7), (None, None), (False, False),
])
def test_decode_value(raw, expected):
    assert decode_value(raw) == expected


@pytest.mark.parametrize("encode", [json.dumps, str, lambda value: json.dumps(json.dumps(value))],
                         ids=["sdk-json", "sdk-str", "double-quoted"])
def test_every_default_survives_each_sdk_encoding(encode):
    """SDK >= 2.110 sends json.dumps(value), older ones str(value) ("True", "None"); all must parse back."""
    defaults = Hyperparameters().to_dict()
    encoded = {name: encode(value) for name, value in defaults.items()}
    assert parse_hyperparameters(encoded).to_dict() == defaults


@pytest.mark.parametrize("raw", [64, "64", '"64"', " 64 ", "64.0", '"64.0"', 64.0])
def test_integer_encodings(raw):
    value = parse_hyperparameters({"batch_size": raw}).batch_size
    assert value == 64 and type(value) is int


@pytest.mark.parametrize("raw, expected", [
    (True, True), ("true", True), ("True", True), ("TRUE", True), ('"true"', True), ('"True"', True), ("1", True),
    (False, False), ("false", False), ("False", False), ('"false"', False), ("0", False), (0, False),
])
def test_boolean_encodings(raw, expected):
    assert parse_hyperparameters({"bucketing_enabled": raw}).bucketing_enabled is expected


@pytest.mark.parametrize("raw", ["adam", '"adam"', "Adam", ' "ADAM" '])
def test_choice_encodings(raw):
    assert parse_hyperparameters({"optimizer_type": raw}).optimizer_type == "adam"


@pytest.mark.parametrize("raw, expected", [
    ("0.001", 0.001), ("1e-3", 0.001), ('"1e-3"', 0.001), (0.001, 0.001), ("1", 1.0), (2, 2.0),
])
def test_float_encodings(raw, expected):
    value = parse_hyperparameters({"learning_rate": raw}).learning_rate
    assert value == pytest.approx(expected) and type(value) is float


@pytest.mark.parametrize("raw", [None, "None", "none", "null", '"None"', '"null"', ""])
def test_optional_encodings_of_unset(raw):
    assert parse_hyperparameters({"max_num_epochs": raw}).max_num_epochs is None


def test_optional_values_when_set():
    params = parse_hyperparameters({"max_num_epochs": '"7"', "rnn_attention_num_hidden": "128",
                                    "optimizer_type": "sgd", "momentum": "0.9"})
    assert (params.max_num_epochs, params.rnn_attention_num_hidden, params.momentum) == (7, 128, 0.9)


@pytest.mark.parametrize("raw, expected", [
    ("auto", "auto"), ("cpu", "cpu"), ("cpu:2", "cpu:2"), ('"gpu:0,1"', "gpu:0,1"), ("GPU:0, 1", "gpu:0,1"),
])
def test_devices_accepted(raw, expected):
    assert parse_hyperparameters({"devices": raw}).devices == expected


@pytest.mark.parametrize("devices, expected", [
    ("auto", ("auto", 0, ())), ("cpu", ("cpu", 1, ())), ("cpu:3", ("cpu", 3, ())),
    ("gpu:0,2", ("gpu", 2, (0, 2))), ("gpu:1", ("gpu", 1, (1,))),
])
def test_parse_devices(devices, expected):
    assert parse_devices(devices) == expected


def test_parse_devices_rejects_garbage():
    with pytest.raises(HyperparameterError, match="devices"):
        parse_devices("tpu:0")


@pytest.mark.parametrize("name, raw, allowed", [
    ("batch_size", "0", "integer >= 1"),
    ("batch_size", "sixty", "integer >= 1"),
    ("batch_size", "6.5", "integer >= 1"),
    ("batch_size", "true", "integer >= 1"),
    ("beam_size", "-2", "integer >= 1"),
    ("bleu_sample_size", "-2", "-1 (all), 0 (no BLEU) or integer >= 1"),
    ("max_num_batches", "0", "-1 (no limit) or integer >= 1"),
    ("max_num_batches", "-3", "-1 (no limit) or integer >= 1"),
    ("max_num_epochs", "0", "none or integer >= 1"),
    ("min_num_epochs", "-1", "integer >= 0"),
    ("bucketing_enabled", "yes", "true or false"),
    ("bucketing_enabled", "2", "true or false"),
    ("optimizer_type", '"adma"', "adam, sgd, rmsprop"),
    ("rnn_cell_type", "rnn", "lstm, gru"),
    ("rnn_attention_type", "additive", "dot, fixed, mlp, bilinear"),
    ("rnn_decoder_state_init", "first", "last, avg, zero"),
    ("lr_scheduler_type", "cosine", "plateau_reduce, fixed_rate_inv_t, fixed_rate_inv_sqrt_t"),
    ("loss_type", "mse", "cross-entropy"),
    ("optimized_metric", "loss", "perplexity, accuracy, bleu"),
    ("training_metric", "bleu", "perplexity, accuracy"),
    ("weight_init_type", "normal", "xavier, uniform"),
    ("xavier_factor_type", "mean", "in, out, avg"),
    ("cnn_activation_type", "gelu", "glu, relu, softrelu, sigmoid, tanh"),
    ("encoder_type", "transformer", "rnn, cnn"),
    ("learning_rate", "0", "number > 0.0"),
    ("learning_rate", "NaN", "number > 0.0"),
    ("learning_rate", "inf", "number > 0.0"),
    ("embed_dropout_source", "1", "number in [0.0, 1.0)"),
    ("rnn_decoder_hidden_dropout", "-0.1", "number in [0.0, 1.0)"),
    ("plateau_reduce_lr_factor", "1.0", "number in (0.0, 1.0)"),
    ("momentum", "1.5", "none or number in [0.0, 1.0)"),
    ("weight_decay", "-1e-4", "number >= 0.0"),
    ("weight_init_scale", "0", "number > 0.0"),
    ("rnn_first_residual_layer", "1", "integer >= 2"),
    ("label_smoothing", "1.0", "number in [0.0, 1.0)"),
    ("teacher_forcing_ratio", "1.5", "number in [0.0, 1.0]"),
    ("teacher_forcing_decay_batches", "-1", "integer >= 0"),
    ("length_penalty_alpha", "-1", "number >= 0.0"),
    ("warmup_num_batches", "-5", "integer >= 0"),
    ("devices", "gpu", "auto, cpu, cpu:N or gpu:I,J,..."),
    ("devices", "cpu:0", "auto, cpu, cpu:N or gpu:I,J,..."),
    ("devices", "gpu:0;1", "auto, cpu, cpu:N or gpu:I,J,..."),
    ("seed", "-1", "integer in [0, 4294967295]"),
    ("log_frequency_num_batches", "0", "integer >= 1"),
    ("precision", "fp64", "fp32, fp16"),
    ("ps_port", "70000", "integer in [1, 65535]"),
    ("peer_timeout_seconds", "0", "number > 0.0"),
    ("input_feeding", "maybe", "true or false"),
])
def test_invalid_value_names_hyperparameter_value_and_allowed(name, raw, allowed):
    message = str(error_of({name: raw}))
    assert f"hyperparameter '{name}'" in message
    assert repr(raw) in message
    assert f"allowed: {allowed}" in message


def test_list_or_object_values_are_rejected():
    message = str(error_of({"batch_size": "[64]"}))
    assert "hyperparameter 'batch_size'" in message and "'[64]'" in message


@pytest.mark.parametrize("raw, fragment", [
    ({"encoder_type": "cnn"}, "hyperparameter 'encoder_type' = \"cnn\": the convolutional (cnn) model is not "
                              "supported here; allowed: rnn"),
    ({"decoder_type": '"cnn"'}, "hyperparameter 'decoder_type' = \"cnn\""),
    ({"rnn_num_hidden": "511"}, "hyperparameter 'rnn_num_hidden' = 511: must be even"),
    ({"momentum": "0.9"}, "hyperparameter 'momentum' = 0.9: only allowed with optimizer_type = \"sgd\""),
    ({"momentum": "0.9", "optimizer_type": "rmsprop"}, "(optimizer_type is \"rmsprop\")"),
    ({"weight_tying": "true", "num_embed_target": "256", "rnn_num_hidden": "512"},
     "hyperparameter 'weight_tying' = true needs num_embed_target (256) equal to rnn_num_hidden (512)"),
    ({"min_num_epochs": "5", "max_num_epochs": "3"}, "hyperparameter 'min_num_epochs' = 5: must not exceed "
                                                     "max_num_epochs (3)"),
    ({"optimized_metric": "bleu"}, "hyperparameter 'optimized_metric' = \"bleu\" needs bleu_sample_size"),
    ({"devices": "gpu:0,1,0"}, "hyperparameter 'devices' = \"gpu:0,1,0\": a GPU is listed twice"),
])
def test_cross_field_errors(raw, fragment):
    assert fragment in str(error_of(raw))


def test_cross_field_combinations_that_are_fine():
    params = parse_hyperparameters({
        "weight_tying": "true", "num_embed_target": "256", "rnn_num_hidden": "256", "optimizer_type": "sgd",
        "momentum": "0.5", "optimized_metric": "bleu", "bleu_sample_size": "-1", "min_num_epochs": "3",
        "max_num_epochs": "3"})
    assert params.weight_tying and params.momentum == 0.5 and params.bleu_sample_size == -1


def test_cross_check_skipped_when_a_field_it_needs_is_invalid():
    error = error_of({"optimizer_type": "sgdd", "momentum": "0.9"})
    assert error.errors == ["hyperparameter 'optimizer_type': invalid value 'sgdd'; allowed: adam, sgd, rmsprop, adadelta"]


def test_all_errors_reported_together():
    error = error_of({"batch_szie": "64", "beam_size": "0", "rnn_num_hidden": "33", "precision": "int8"})
    assert len(error.errors) == 4
    message = str(error)
    assert message.startswith("4 hyperparameter errors: (1) ")
    for fragment in ("'batch_szie'", "'beam_size'", "'rnn_num_hidden'", "'precision'"):
        assert fragment in message
    assert "(4) " in message


@pytest.mark.parametrize("key, suggestion", [
    ("batch_szie", "batch_size"), ("batch-size", "batch_size"), ("Learning_Rate", "learning_rate"),
    ("num_layer_encoder", "num_layers_encoder"), ("lable_smoothing", "label_smoothing"),
])
def test_unknown_key_suggests_closest_name(key, suggestion):
    assert str(error_of({key: "1"})) == f"unknown hyperparameter '{key}'; did you mean '{suggestion}'?"


def test_unknown_key_without_close_name():
    message = str(error_of({"zzqqxx": "1"}))
    assert message == "unknown hyperparameter 'zzqqxx'; see the README for the list of hyperparameters"


def test_reserved_keys_are_accepted_and_kept_aside():
    raw = {"sagemaker_program": '"train.py"', "sagemaker_region": "us-east-1",
           "sagemaker_parameter_server_enabled": "true", "_tuning_objective_metric": "validation:bleu",
           "_ps_verbose": "0", "sagemaker_anything_new": "x", "batch_size": "32"}
    params = parse_hyperparameters(raw)
    assert params.batch_size == 32
    assert params.reserved == {key: value for key, value in raw.items() if key != "batch_size"}
    assert "sagemaker_program" not in params.to_dict()
    assert params == parse_hyperparameters({"batch_size": "32"})  # reserved keys do not affect equality


def test_ps_port_alias():
    assert parse_hyperparameters({"_ps_port": '"9001"'}).ps_port == 9001
    assert parse_hyperparameters({"_ps_port": "9001", "ps_port": "9001"}).ps_port == 9001
    message = str(error_of({"_ps_port": "9001", "ps_port": "9002"}))
    assert "'ps_port'" in message and "'_ps_port'" in message
    assert "hyperparameter 'ps_port': invalid value 'x'" in str(error_of({"_ps_port": "x"}))


def test_epochs_alias_sets_max_num_epochs():
    assert parse_hyperparameters({"epochs": "7"}).max_num_epochs == 7
    assert parse_hyperparameters({"epochs": "7", "max_num_epochs": "7"}).max_num_epochs == 7
    assert "contradicts 'epochs'" in str(error_of({"epochs": "3", "max_num_epochs": "4"}))


@pytest.mark.parametrize("raw, fragment", [
    ({"lr_scheduler_type": "linear_decay"}, "needs max_num_batches >= 1"),
    ({"lr_scheduler_type": "linear_decay", "max_num_batches": "10", "warmup_num_batches": "10"},
     "must be below max_num_batches (10)"),
    ({"curriculum": "length"}, "needs curriculum_num_epochs or max_num_batches"),
    ({"weight_tying": "true", "weight_tying_type": "src_trg", "num_embed_source": "128"},
     "needs num_embed_source (128) equal to num_embed_target (512)"),
])
def test_schedule_and_tying_checks(raw, fragment):
    assert fragment in str(error_of(raw))


def test_source_target_tying_needs_no_output_width():
    params = parse_hyperparameters({"weight_tying": "true", "weight_tying_type": "src_trg",
                                    "num_embed_source": "256", "num_embed_target": "256"})
    assert params.weight_tying_type == "src_trg"


def test_non_object_input():
    assert "must be a JSON object" in str(error_of(["batch_size"]))


def test_round_trip_through_json():
    params = parse_hyperparameters({"batch_size": "32", "optimizer_type": "sgd", "momentum": "0.9",
                                    "max_num_epochs": "4", "devices": "cpu:2", "label_smoothing": "0",
                                    "bucketing_enabled": "False", "sagemaker_region": "x"})
    saved = json.loads(json.dumps(params.to_dict()))
    restored = Hyperparameters.from_dict(saved)
    assert restored == params
    assert restored.to_dict() == params.to_dict()


def test_direct_construction_is_validated():
    with pytest.raises(HyperparameterError, match="hyperparameter 'batch_size'"):
        Hyperparameters(batch_size=0)
    with pytest.raises(HyperparameterError, match="must be even"):
        dataclasses.replace(Hyperparameters(), rnn_num_hidden=7)
    assert dataclasses.replace(Hyperparameters(), rnn_num_hidden=8).rnn_num_hidden == 8


def test_direct_construction_stores_canonical_values():
    params = Hyperparameters(batch_size=32.0, devices="GPU:0, 1", optimizer_type="SGD", momentum=0)
    assert (params.batch_size, params.devices, params.optimizer_type, params.momentum) == (32, "gpu:0,1", "sgd", 0.0)
    assert type(params.batch_size) is int and type(params.momentum) is float


def test_frozen_and_hashable():
    params = Hyperparameters()
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.batch_size = 1
    assert hash(params) == hash(Hyperparameters())


def test_teacher_forcing_schedule():
    constant = parse_hyperparameters({"teacher_forcing_ratio": "0.75"})
    assert [constant.teacher_forcing_at(n) for n in (0, 10, 10 ** 6)] == [0.75, 0.75, 0.75]
    decaying = parse_hyperparameters({"teacher_forcing_ratio": "0.5", "teacher_forcing_decay_batches": "100"})
    assert [decaying.teacher_forcing_at(n) for n in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.75, 0.5, 0.5])


def test_load_file_missing_means_defaults(tmp_path):
    assert load_hyperparameters_file(str(tmp_path / "absent.json")) == Hyperparameters()


def test_load_file(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps({"batch_size": '"16"', "optimizer_type": '"rmsprop"', "sagemaker_job_name": "j"}))
    params = load_hyperparameters_file(str(path))
    assert (params.batch_size, params.optimizer_type) == (16, "rmsprop")


def test_load_file_bad_json_names_file(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_text('{"batch_size": "16",')
    with pytest.raises(UserError, match=f"{path}: not valid JSON"):
        load_hyperparameters_file(str(path))


def test_load_file_errors_name_file(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps({"batch_size": "0"}))
    with pytest.raises(HyperparameterError, match=f"^{path}: hyperparameter 'batch_size'"):
        load_hyperparameters_file(str(path))
    path.write_text("[1, 2]")
    with pytest.raises(HyperparameterError, match=f"^{path}: hyperparameters must be a JSON object"):
        load_hyperparameters_file(str(path))


def test_documentation_rows():
    rows = documentation_rows()
    assert [row[0] for row in rows] == names()
    by_name = {row[0]: row for row in rows}
    for name, default in AMAZON_DEFAULTS.items():
        assert by_name[name][4] == by_name[name][1], name   # Amazon's default is ours
    for name in OUR_DEFAULTS:
        assert by_name[name][4] == "ours"
    assert by_name["batch_size"][1:3] == ("64", "integer >= 1")
    assert by_name["bucketing_enabled"][1] == "true"
    assert by_name["max_num_epochs"][1] == "none"
    assert by_name["rnn_attention_num_hidden"][1] == "= rnn_num_hidden"
    assert all(row[3] for row in rows)
