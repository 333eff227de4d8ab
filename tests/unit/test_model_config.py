"""ModelConfig is made from the hyperparameter declarations (model=True): one home for each model option."""

import dataclasses

import pytest

from seq2seq.errors import UserError
from seq2seq.hyperparameters import Hyperparameters, model_fields, parse_hyperparameters
from seq2seq.model.config import MEASURED_FIELDS, ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel

# A config.json `model` section as an early version wrote it: before input_feeding, weight_tying and the
# length ratios existed, with the attention size stored as a number.
EARLY_CONFIG = {
    "source_vocab_size": 30, "target_vocab_size": 40, "num_embed_source": 8, "num_embed_target": 8,
    "rnn_cell_type": "lstm", "rnn_num_hidden": 16, "num_layers_encoder": 1, "num_layers_decoder": 1,
    "rnn_residual_connections": False, "rnn_first_residual_layer": 2, "rnn_decoder_state_init": "last",
    "rnn_attention_type": "mlp", "rnn_attention_num_hidden": 12, "rnn_attention_in_upper_layers": True,
    "rnn_decoder_hidden_dropout": 0.0, "embed_dropout_source": 0.0, "embed_dropout_target": 0.0,
    "max_seq_len_source": 50, "max_seq_len_target": 60,
}


def test_fields_are_the_model_hyperparameters_plus_the_measured_values():
    config_fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    declared = model_fields()
    assert set(config_fields) == {f.name for f in declared} | {name for name, _, _ in MEASURED_FIELDS}
    for option in declared:
        assert config_fields[option.name].type == option.type, option.name
        assert config_fields[option.name].default == option.default, option.name
    assert {"rnn_num_hidden", "input_feeding", "rnn_attention_type"} <= {f.name for f in declared}
    assert not {"batch_size", "learning_rate", "beam_size"} & {f.name for f in declared}


def test_from_hyperparameters_copies_every_model_option():
    hp = parse_hyperparameters({"rnn_num_hidden": "64", "rnn_cell_type": "gru", "input_feeding": "false",
                                "num_embed_target": "24", "max_seq_len_target": "33"})
    config = ModelConfig.from_hyperparameters(hp, 100, 200, 1.1, 0.2)
    for option in model_fields():
        assert getattr(config, option.name) == getattr(hp, option.name), option.name
    assert (config.source_vocab_size, config.target_vocab_size) == (100, 200)
    assert (config.length_ratio_mean, config.length_ratio_std) == (1.1, 0.2)
    assert (config.rnn_cell_type, config.input_feeding, config.states_per_layer) == ("gru", False, 1)


def test_attention_size_defaults_to_rnn_num_hidden():
    hp = parse_hyperparameters({"rnn_num_hidden": "64"})
    assert ModelConfig.from_hyperparameters(hp, 5, 5, 1.0, 0.5).attention_num_hidden == 64
    hp = parse_hyperparameters({"rnn_num_hidden": "64", "rnn_attention_num_hidden": "32"})
    assert ModelConfig.from_hyperparameters(hp, 5, 5, 1.0, 0.5).attention_num_hidden == 32


def test_an_early_config_loads_with_the_defaults_of_later_options():
    config = ModelConfig.from_dict(EARLY_CONFIG)
    defaults = Hyperparameters()
    assert (config.input_feeding, config.weight_tying) == (defaults.input_feeding, defaults.weight_tying)
    assert (config.length_ratio_mean, config.length_ratio_std) == (1.0, 0.5)
    assert (config.attention_num_hidden, config.max_seq_len_target) == (12, 60)
    model = Seq2SeqModel(config)
    model.initialize()
    shapes = {name: param.shape for name, param in model.collect_params().items()}
    assert (40, 8) in shapes.values()  # the target embedding of the saved sizes


def test_loaded_config_is_checked_like_the_hyperparameters():
    with pytest.raises(UserError, match="must be even"):
        ModelConfig.from_dict(dict(EARLY_CONFIG, rnn_num_hidden=15))
    with pytest.raises(UserError, match="weight_tying"):
        ModelConfig.from_dict(dict(EARLY_CONFIG, weight_tying=True))
