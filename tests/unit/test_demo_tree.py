"""demo.sagemaker_tree: the local /opt/ml layout the demo and the image test train on."""

import json
import os
import stat

import pytest

from demo import sagemaker_tree
from seq2seq.hyperparameters import load_hyperparameters_file
from seq2seq.opt_ml import SageMakerPaths

PREPARED = ("train.rec", "val.rec", "vocab.src.json", "vocab.trg.json")


@pytest.fixture
def prepared(tmp_path):
    directory = tmp_path / "prepared"
    directory.mkdir()
    for name in PREPARED:
        (directory / name).write_bytes(name.encode())
    return directory


def test_hyperparameters_become_sagemaker_strings():
    assert sagemaker_tree.hyperparameters_as_strings({"batch_size": 64, "bucketing_enabled": False,
                                                      "learning_rate": 0.003, "devices": "cpu"}) == {
        "batch_size": "64", "bucketing_enabled": "false", "learning_rate": "0.003", "devices": "cpu"}


def test_tree_has_the_channels_and_config_where_the_job_reads_them(tmp_path, prepared, monkeypatch):
    base = tmp_path / "opt_ml"
    sagemaker_tree.build_training_tree(str(base), str(prepared), {"batch_size": 32, "bucketing_enabled": False})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    paths = SageMakerPaths()
    assert open(os.path.join(paths.channel_dir("train"), "train.rec"), "rb").read() == b"train.rec"
    assert open(os.path.join(paths.channel_dir("validation"), "val.rec"), "rb").read() == b"val.rec"
    assert sorted(os.listdir(paths.channel_dir("vocab"))) == ["vocab.src.json", "vocab.trg.json"]
    hp = load_hyperparameters_file(paths.hyperparameters_file)
    assert hp.batch_size == 32 and hp.bucketing_enabled is False
    assert json.load(open(paths.hyperparameters_file)) == {"batch_size": "32", "bucketing_enabled": "false"}
    for name in ("model", "output", "checkpoints"):
        assert (base / name).is_dir()


def test_writable_by_all_opens_only_the_output_directories(tmp_path, prepared):
    base = tmp_path / "opt_ml"
    sagemaker_tree.build_training_tree(str(base), str(prepared), {}, writable_by_all=True)
    for name in ("model", "output", "checkpoints"):
        assert stat.S_IMODE((base / name).stat().st_mode) == 0o777
    assert stat.S_IMODE((base / "input").stat().st_mode) != 0o777


def test_missing_prepared_file_is_named(tmp_path, prepared):
    (prepared / "val.rec").unlink()
    with pytest.raises(FileNotFoundError, match="val.rec is missing: run `python -m recordio_tools prepare`"):
        sagemaker_tree.build_training_tree(str(tmp_path / "opt_ml"), str(prepared), {})


def test_cli_rejects_hyperparameters_that_are_not_an_object(tmp_path, prepared, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sagemaker_tree.main(["--prepared", str(prepared), "--base", str(tmp_path / "b"), "--hyperparameters", "[1]"])
    assert exit_info.value.code == 2
    assert "must be a JSON object" in capsys.readouterr().err
