"""The training job on a vocab channel with subword models: models exported, detokenised BLEU at checkpoints."""
import json
import os
import re
import shutil

import pytest

from demo.synthetic_task import write_corpus
from recordio_tools.__main__ import main as recordio_tools
from seq2seq.data.subword import SUBWORD_FILES, WORD_BOUNDARY
from tests.sagemaker_tree import TINY_MODEL, run_train_job, write_hyperparameters

HYPERPARAMETERS = dict(TINY_MODEL, max_num_batches=40, checkpoint_frequency_num_batches=20, bleu_sample_size=10,
                       beam_size=2, seed=7, max_seq_len_source=16, max_seq_len_target=16)
BLEU_LINE = re.compile(r"^#quality_metric: host=algo-1, epoch=\d+, batch=\d+ validation bleu <score>=([0-9.eE+-]+) "
                       r"\(sacreBLEU (\S+)\)$", re.MULTILINE)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    work = tmp_path_factory.mktemp("subword_job")
    paths = write_corpus(str(work / "corpus"), train=600, validation=20, test=5, raw=True)
    prepared = work / "prepared"
    assert recordio_tools(["prepare", "--train-source", paths["train"][0], "--train-target", paths["train"][1],
                           "--val-source", paths["val"][0], "--val-target", paths["val"][1], "--output",
                           str(prepared), "--subword", "unigram", "--subword-vocab-size", "150", "--quiet"]) == 0
    base = work / "opt_ml"
    layout = {"train": ["train.rec"], "validation": ["val.rec"],
              "vocab": ["vocab.src.json", "vocab.trg.json", *SUBWORD_FILES]}
    for channel, names in layout.items():
        os.makedirs(base / "input" / "data" / channel)
        for name in names:
            shutil.copy(prepared / name, base / "input" / "data" / channel / name)
    write_hyperparameters(str(base), HYPERPARAMETERS)
    result = run_train_job(str(base))
    assert result.returncode == 0, result.stdout[-3000:]
    return base, prepared, result.stdout


def test_the_subword_models_are_written_to_the_model_directory(job):
    base, prepared, _ = job
    for name in SUBWORD_FILES:
        assert (base / "model" / name).read_bytes() == (prepared / name).read_bytes()
    config = json.loads((base / "model" / "config.json").read_text())
    assert config["text"]["source_model"] == "subword.src.model" and config["text"]["joint"] is False


def test_checkpoint_bleu_is_detokenised_sacrebleu_and_says_so(job):
    base, _, stdout = job
    lines = BLEU_LINE.findall(stdout)
    assert len(lines) == 2
    for score, signature in lines:
        assert 0.0 <= float(score) <= 100.0
        assert "case:mixed" in signature and "tok:13a" in signature
    history = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert all("tok:13a" in record["validation_bleu_signature"] for record in history)


def test_the_exported_model_translates_raw_text(job):
    from seq2seq.inference.translator import Translator
    base, _, _ = job
    translator = Translator.load(str(base / "model"))
    results = translator.translate_text(["The big dog sees a cat.", "A bird sings."])
    assert all(isinstance(r.text, str) and WORD_BOUNDARY not in r.text for r in results)
