"""weight_tying_type: which matrices share one parameter, its training update, parameter files, fine-tuning and
pretrained embeddings with a shared matrix, and the one-vocabulary condition."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from seq2seq.data.vocab import Vocabulary
from seq2seq.embeddings import load_pretrained_embeddings
from seq2seq.errors import UserError
from seq2seq.finetune import freeze_parameters
from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel
from seq2seq.model.tying import check_joint_vocabulary, ties_output_layer, ties_source_and_target
from seq2seq.model_channel import load_into, open_stored_model
from seq2seq.training.loss import MaskedCrossEntropy
from tests.untrained_model import save_untrained_model

VOCAB = 15
SIZES = dict(num_embed_source=12, num_embed_target=12, rnn_num_hidden=12, rnn_attention_num_hidden=6,
             input_feeding=False, max_seq_len_source=10, max_seq_len_target=10)
NAMES = ("encoder.embedding.weight", "decoder.embedding.weight", "decoder.output_layer.weight")


def tied_model(tying_type, seed=5, vocab_size=VOCAB, **overrides):
    config = ModelConfig(source_vocab_size=vocab_size, target_vocab_size=vocab_size,
                         **dict(SIZES, weight_tying=True, weight_tying_type=tying_type, **overrides))
    mx.random.seed(seed)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(magnitude=2.34), mx.cpu())
    return model


def views(model):
    params = model._collect_params_with_prefix()
    return [params[name] for name in NAMES]


def batch():
    source = mx.nd.array([[4, 5, 6, 7], [8, 9, 10, 0]])
    source_length = mx.nd.array([4, 3])
    target_input = mx.nd.array([[2, 11, 12, 13], [2, 14, 4, 0]])
    labels = mx.nd.array([[11, 12, 13, 3], [14, 4, 3, 0]])
    return source, source_length, target_input, labels


def sgd_step(model, learning_rate=0.5):
    trainer = gluon.Trainer(model.collect_params(), "sgd", {"learning_rate": learning_rate})
    source, source_length, target_input, labels = batch()
    with autograd.record():
        total, _, _ = MaskedCrossEntropy()(model(source, source_length, target_input), labels)
    total.backward()
    trainer.step(1)


@pytest.mark.parametrize("tying_type, shared_groups", [
    ("trg_softmax", [(1, 2)]),
    ("src_trg", [(0, 1)]),
    ("src_trg_softmax", [(0, 1, 2)]),
])
def test_which_views_share_one_parameter(tying_type, shared_groups):
    model = tied_model(tying_type)
    params = views(model)
    for i in range(3):
        for j in range(3):
            together = i == j or any(i in group and j in group for group in shared_groups)
            assert (params[i] is params[j]) == together, (NAMES[i], NAMES[j])
    # collect_params (what the optimiser updates) holds every parameter once.
    collected = list(model.collect_params().values())
    assert len({id(p) for p in collected}) == len(collected)
    for parameter in params:
        assert sum(p is parameter for p in collected) == 1
    config = model.config
    assert ties_source_and_target(config) == tying_type.startswith("src_trg")
    assert ties_output_layer(config) == tying_type.endswith("softmax")


def test_src_trg_softmax_one_parameter_gets_every_gradient_and_one_update():
    model = tied_model("src_trg_softmax")
    shared = model.encoder.embedding.weight
    before = shared.data().asnumpy().copy()
    source, source_length, target_input, labels = batch()
    with autograd.record():
        total, _, _ = MaskedCrossEntropy()(model(source, source_length, target_input), labels)
    total.backward()
    gradient = shared.grad().asnumpy()
    # Rows used only by the source (5..10), only by the target input (11..14) and by no input at all (the output
    # layer's rows, 1): every path reaches the one matrix.
    for row in (5, 6, 7, 9, 10, 12, 13, 1):
        assert np.abs(gradient[row]).sum() > 0, row
    trainer = gluon.Trainer(model.collect_params(), "sgd", {"learning_rate": 0.5})
    trainer.step(1)
    after = [view.data().asnumpy() for view in views(model)]
    np.testing.assert_allclose(after[0], before - 0.5 * gradient, rtol=1e-5, atol=1e-6)
    assert not np.allclose(after[0], before)
    for other in after[1:]:
        np.testing.assert_array_equal(other, after[0])


def test_src_trg_shares_only_the_embeddings():
    model = tied_model("src_trg")
    encoder_embedding, decoder_embedding, output = views(model)
    output_before = output.data().asnumpy().copy()
    sgd_step(model)
    np.testing.assert_array_equal(encoder_embedding.data().asnumpy(), decoder_embedding.data().asnumpy())
    assert output.shape == (VOCAB, SIZES["rnn_num_hidden"])
    assert not np.allclose(output.data().asnumpy()[:, :SIZES["num_embed_target"]],
                           encoder_embedding.data().asnumpy())
    assert not np.allclose(output.data().asnumpy(), output_before)   # trained, as a parameter of its own


def test_src_trg_with_different_vocabulary_sizes_is_refused():
    with pytest.raises(UserError, match="one vocabulary: the source has 15 tokens, the target 16"):
        Seq2SeqModel(ModelConfig(source_vocab_size=15, target_vocab_size=16,
                                 **dict(SIZES, weight_tying=True, weight_tying_type="src_trg")))


@pytest.mark.parametrize("tying_type", ["trg_softmax", "src_trg", "src_trg_softmax"])
def test_parameter_file_holds_a_shared_parameter_once_and_round_trips(tmp_path, tying_type):
    model = tied_model(tying_type, seed=1)
    sgd_step(model)
    path = str(tmp_path / "params")
    model.save_parameters(path)
    saved = mx.nd.load(path)
    unique = model.unique_parameters()
    assert sorted(saved) == sorted(unique)
    assert len(saved) == len({id(p) for p in model._collect_params_with_prefix().values()})
    first = "decoder.embedding.weight" if tying_type == "trg_softmax" else "encoder.embedding.weight"
    assert first in saved
    assert ("decoder.embedding.weight" in saved) == (tying_type == "trg_softmax")
    assert ("decoder.output_layer.weight" in saved) == (tying_type == "src_trg")   # not tied: a matrix of its own
    reloaded = tied_model(tying_type, seed=2)
    reloaded.load_parameters(path)
    for name, parameter in reloaded._collect_params_with_prefix().items():
        np.testing.assert_array_equal(parameter.data().asnumpy(),
                                      model._collect_params_with_prefix()[name].data().asnumpy(), err_msg=name)
    source, source_length, target_input, _ = batch()
    np.testing.assert_allclose(reloaded(source, source_length, target_input).asnumpy(),
                               model(source, source_length, target_input).asnumpy(), rtol=1e-6)
    # A file written with every name (as before weight_tying_type) loads as well.
    every_name = str(tmp_path / "every_name")
    model.save_parameters(every_name, deduplicate=False)
    assert set(mx.nd.load(every_name)) == set(model._collect_params_with_prefix())
    tied_model(tying_type, seed=3).load_parameters(every_name)


def test_a_config_without_weight_tying_type_builds_todays_tied_model():
    values = ModelConfig(source_vocab_size=9, target_vocab_size=11, **dict(SIZES, weight_tying=True)).to_dict()
    del values["weight_tying_type"]
    config = ModelConfig.from_dict(values)
    assert config.weight_tying_type == "trg_softmax"
    model = Seq2SeqModel(config)
    assert model.decoder.output_layer.weight is model.decoder.embedding.weight
    assert model.encoder.embedding.weight is not model.decoder.embedding.weight


def vocab(*tokens):
    return Vocabulary({t: i for i, t in enumerate(("<pad>", "<unk>", "<s>", "</s>") + tokens)})


def test_tied_source_and_target_need_identical_vocabularies():
    src_trg = parse_hyperparameters({"weight_tying": "true", "weight_tying_type": "src_trg",
                                     "num_embed_source": "32", "num_embed_target": "32"})
    check_joint_vocabulary(src_trg, vocab("a", "b"), vocab("a", "b"), "vocab.src.json", "vocab.trg.json")
    with pytest.raises(UserError) as info:
        check_joint_vocabulary(src_trg, vocab("a", "b"), vocab("b", "a"), "v/vocab.src.json", "v/vocab.trg.json")
    assert str(info.value) == (
        "hyperparameter 'weight_tying_type' = \"src_trg\" ties the source and target embeddings, which needs one "
        "vocabulary, but v/vocab.src.json and v/vocab.trg.json differ (id 4 is 'a' in the first, 'b' in the "
        "second); prepare the data with 'python -m recordio_tools prepare --joint-vocab'")
    with pytest.raises(UserError, match=r"differ \(6 and 5 tokens\)"):
        check_joint_vocabulary(src_trg, vocab("a", "b"), vocab("a"), "s", "t")
    # trg_softmax, or no tying at all, takes any two vocabularies.
    for values in ({"weight_tying": "true", "num_embed_target": "1024"}, {"weight_tying_type": "src_trg"}):
        check_joint_vocabulary(parse_hyperparameters(values), vocab("a"), vocab("x", "y"), "s", "t")


@pytest.mark.parametrize("tying_type, fixed", [
    ("src_trg", ["decoder.embedding.weight", "encoder.embedding.weight"]),
    ("src_trg_softmax", ["decoder.embedding.weight", "decoder.output_layer.weight", "encoder.embedding.weight"]),
])
def test_freezing_the_source_embeddings_freezes_the_shared_matrix(tying_type, fixed):
    model = tied_model(tying_type)
    hp = parse_hyperparameters({"weight_tying": "true", "weight_tying_type": tying_type, "num_embed_source": "12",
                                "num_embed_target": "12", "rnn_num_hidden": "12", "freeze_embeddings_source": "true"})
    assert freeze_parameters(model, hp) == fixed
    before = model.encoder.embedding.weight.data().asnumpy().copy()
    sgd_step(model)
    np.testing.assert_array_equal(model.decoder.embedding.weight.data().asnumpy(), before)


def test_fine_tuning_loads_a_stored_src_trg_softmax_model(tmp_path):
    words = vocab("a", "b", "c", "d")
    save_untrained_model(str(tmp_path), words, words, seed=4, **dict(SIZES, weight_tying=True,
                                                                     weight_tying_type="src_trg_softmax"))
    stored_values = mx.nd.load(str(tmp_path / "params.best"))
    assert "encoder.embedding.weight" in stored_values and "decoder.embedding.weight" not in stored_values
    new_words = vocab("c", "a", "new", "b")
    model = tied_model("src_trg_softmax", vocab_size=len(new_words))
    with open_stored_model(str(tmp_path)) as stored:
        report = load_into(model, stored, new_words, new_words)
    assert report.source.num_copied == 7 and report.source.num_new == 1
    shared = model.decoder.output_layer.weight.data().asnumpy()
    stored_shared = stored_values["encoder.embedding.weight"].asnumpy()
    np.testing.assert_array_equal(shared[4], stored_shared[6])      # 'c'
    np.testing.assert_array_equal(shared[7], stored_shared[5])      # 'b'
    np.testing.assert_array_equal(model.encoder.embedding.weight.data().asnumpy(), shared)


def test_pretrained_embeddings_fill_a_shared_matrix_source_file_first(tmp_path):
    words = vocab("house", "Haus", "taxi")
    (tmp_path / "embed.src.txt").write_text("house 1 1 1 1 1 1 1 1 1 1 1 1\ntaxi 2 2 2 2 2 2 2 2 2 2 2 2\n")
    (tmp_path / "embed.trg.txt").write_text("Haus 3 3 3 3 3 3 3 3 3 3 3 3\ntaxi 4 4 4 4 4 4 4 4 4 4 4 4\n")
    model = tied_model("src_trg_softmax", vocab_size=len(words))
    initial = model.encoder.embedding.weight.data().asnumpy().copy()
    loads = load_pretrained_embeddings(model, str(tmp_path), words, words)
    assert list(loads["source"].ids) == [4, 6] and list(loads["target"].ids) == [5]
    matrix = model.decoder.output_layer.weight.data().asnumpy()
    np.testing.assert_array_equal(matrix[4], np.ones(12))
    np.testing.assert_array_equal(matrix[5], np.full(12, 3.0))
    np.testing.assert_array_equal(matrix[6], np.full(12, 2.0))       # the source file's vector is kept
    np.testing.assert_array_equal(matrix[:4], initial[:4])
    np.testing.assert_array_equal(model.encoder.embedding.weight.data().asnumpy(), matrix)
