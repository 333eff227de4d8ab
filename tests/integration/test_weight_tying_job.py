"""Three-way tying through the real job: `prepare --joint-vocab` (words and subwords) gives one vocabulary, a
src_trg_softmax job trains on it, exports one shared matrix and decodes; separate vocabularies fail at the gate."""

import json
import os
import shutil

import mxnet as mx
import pytest

from demo.synthetic_task import write_corpus
from recordio_tools.__main__ import main as recordio_tools
from seq2seq.data.subword import SUBWORD_FILES
from seq2seq.inference.translator import Translator
from tests.sagemaker_tree import TINY_MODEL, read_failure, write_hyperparameters

TIED = dict(TINY_MODEL, num_embed_source=32, num_embed_target=32, weight_tying="true",
            weight_tying_type="src_trg_softmax", max_num_batches=30, checkpoint_frequency_num_batches=15,
            bleu_sample_size=0, seed=3, max_seq_len_source=16, max_seq_len_target=16)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(str(tmp_path_factory.mktemp("corpus")), train=300, validation=20, test=5)


def prepared_job(base, corpus, hyperparameters, *prepare_options) -> str:
    """`prepare` the corpus with the options, lay its output out as the job's channels, write hyperparameters."""
    prepared = os.path.join(str(base), "prepared")
    assert recordio_tools(["prepare", "--train-source", corpus["train"][0], "--train-target", corpus["train"][1],
                           "--val-source", corpus["val"][0], "--val-target", corpus["val"][1], "--output",
                           prepared, "--quiet", *prepare_options]) == 0
    layout = {"train": ["train.rec"], "validation": ["val.rec"], "vocab": ["vocab.src.json", "vocab.trg.json",
                                                                           *SUBWORD_FILES]}
    for channel, names in layout.items():
        os.makedirs(os.path.join(str(base), "input", "data", channel))
        for name in names:
            if os.path.exists(os.path.join(prepared, name)):
                shutil.copy(os.path.join(prepared, name), os.path.join(str(base), "input", "data", channel, name))
    write_hyperparameters(str(base), hyperparameters)
    return prepared


def vocab_files_identical(prepared) -> bool:
    with open(os.path.join(prepared, "vocab.src.json"), "rb") as source, \
            open(os.path.join(prepared, "vocab.trg.json"), "rb") as target:
        return source.read() == target.read()


def test_joint_vocabulary_job_trains_exports_one_matrix_and_decodes(tmp_path, corpus, in_process):
    prepared = prepared_job(tmp_path, corpus, TIED, "--joint-vocab")
    assert vocab_files_identical(prepared)
    assert in_process(tmp_path) == 0, read_failure(str(tmp_path))
    saved = mx.nd.load(str(tmp_path / "model" / "params.best"))
    assert "encoder.embedding.weight" in saved
    assert "decoder.embedding.weight" not in saved and "decoder.output_layer.weight" not in saved
    history = json.loads((tmp_path / "output" / "data" / "metrics.json").read_text())
    assert [r["updates"] for r in history] == [15, 30]
    assert history[1]["validation_perplexity"] < history[0]["validation_perplexity"]
    translator = Translator.load(str(tmp_path / "model"))
    model = translator.model
    assert model.encoder.embedding.weight is model.decoder.output_layer.weight
    with open(corpus["test"][0], encoding="utf-8") as stream:
        sentences = [line.strip() for line in stream][:3]
    results = translator.translate_text(sentences)
    assert len(results) == 3 and all(r.target_tokens for r in results)


def test_separate_vocabularies_fail_at_the_gate_with_one_line(tmp_path, corpus, in_process):
    prepared = prepared_job(tmp_path, corpus, dict(TIED, weight_tying_type="src_trg"))
    assert not vocab_files_identical(prepared)
    assert in_process(tmp_path) == 2
    failure = read_failure(str(tmp_path))
    assert failure.count("\n") == 1
    assert failure.startswith("UserError: hyperparameter 'weight_tying_type' = \"src_trg\" ties the source and "
                              "target embeddings, which needs one vocabulary, but ")
    assert "vocab.src.json and " in failure and "prepare --joint-vocab" in failure
    assert not (tmp_path / "checkpoints" / "training_state").exists()


def test_joint_subword_vocabulary_passes_the_gate_and_trains(tmp_path, corpus, in_process):
    raw = write_corpus(str(tmp_path / "raw"), train=300, validation=20, test=5, raw=True)
    prepared = prepared_job(tmp_path / "job", raw, dict(TIED, weight_tying_type="src_trg", max_num_batches=4,
                                                        checkpoint_frequency_num_batches=4),
                            "--joint-vocab", "--subword", "unigram", "--subword-vocab-size", "120")
    assert vocab_files_identical(prepared)
    assert in_process(tmp_path / "job") == 0, read_failure(str(tmp_path / "job"))
    translator = Translator.load(str(tmp_path / "job" / "model"))
    assert translator.model.encoder.embedding.weight is translator.model.decoder.embedding.weight
