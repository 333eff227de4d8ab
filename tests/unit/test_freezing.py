"""Which parameters fixed_param_strategy and freeze_embeddings_* keep fixed (grad_req 'null')."""

import mxnet as mx
import pytest

from seq2seq.finetune import freeze_parameters, frozen_names
from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel

SIZES = dict(num_embed_source=8, num_embed_target=16, rnn_num_hidden=16, rnn_attention_num_hidden=8)


def model(**overrides):
    config = ModelConfig(source_vocab_size=9, target_vocab_size=11, **dict(SIZES, **overrides))
    built = Seq2SeqModel(config)
    built.initialize_parameters(mx.init.Xavier(), mx.cpu())
    return built


def hp(**values):
    return parse_hyperparameters(dict(SIZES, **values))


@pytest.mark.parametrize("values, expected_prefixes", [
    ({}, ()),
    ({"fixed_param_strategy": "embeddings"}, ("encoder.embedding.", "decoder.embedding.")),
    ({"fixed_param_strategy": "encoder"}, ("encoder.",)),
    ({"fixed_param_strategy": "all_except_decoder"}, ("encoder.", "bridge.")),
    ({"freeze_embeddings_source": "true"}, ("encoder.embedding.",)),
    ({"freeze_embeddings_target": "true", "fixed_param_strategy": "encoder"}, ("encoder.", "decoder.embedding.")),
])
def test_frozen_parameters(values, expected_prefixes):
    built = model()
    names = freeze_parameters(built, hp(**values))
    params = built._collect_params_with_prefix()
    expected = sorted(n for n in params if expected_prefixes and n.startswith(expected_prefixes))
    assert names == expected
    for name, parameter in params.items():
        assert (parameter.grad_req == "null") == (name in names), name
    assert any(p.grad_req == "write" for p in params.values())


def test_a_tied_target_embedding_is_frozen_with_the_output_layer():
    built = model(weight_tying=True, num_embed_target=16)
    names = frozen_names(built, hp(weight_tying="true", freeze_embeddings_target="true"))
    assert names == ["decoder.embedding.weight", "decoder.output_layer.weight"]
