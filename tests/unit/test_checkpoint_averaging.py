"""The kept checkpoint parameters and their average (seq2seq/training/checkpoint_averaging.py), on small files."""

import os

import mxnet as mx
import numpy as np
import pytest

from seq2seq.errors import CheckpointError, StorageError
from seq2seq.training import checkpoint_averaging as averaging


def parameters_of(checkpoint: int) -> dict:
    rng = np.random.RandomState(checkpoint)
    return {"encoder.w": rng.normal(size=(3, 4)).astype(np.float32), "decoder.b": rng.normal(size=(5,)).astype(
        np.float32)}


def saver(checkpoint: int):
    return lambda path: mx.nd.save(path, {k: mx.nd.array(v) for k, v in parameters_of(checkpoint).items()})


def keep(directory, checkpoints, num_averaged):
    for checkpoint in checkpoints:
        averaging.keep_checkpoint_parameters(str(directory), checkpoint, num_averaged, saver(checkpoint))


def test_at_most_n_plus_one_files_are_kept_and_the_last_n_are_averaged(tmp_path):
    for checkpoint in range(1, 8):
        keep(tmp_path, [checkpoint], 3)
        kept = averaging.kept_checkpoints(str(tmp_path))
        # checkpoint k's file is written before its state: the state of k - 1 may still be the one on disk, and a
        # job resumed from it (or ending at it) averages k - 3 .. k - 1
        assert kept == list(range(max(1, checkpoint - 3), checkpoint + 1))
    assert averaging.checkpoints_to_average(str(tmp_path), 7, 3) == [5, 6, 7]
    assert averaging.checkpoints_to_average(str(tmp_path), 6, 3) == [4, 5, 6]      # a job resumed from state 6


def test_files_after_the_checkpoint_written_are_stale_and_removed(tmp_path):
    keep(tmp_path, [1, 2, 3, 4], 4)                     # a run that crashed after checkpoint 4's file, before its state
    keep(tmp_path, [4], 4)                              # the resumed run redoes checkpoint 4 ...
    assert averaging.kept_checkpoints(str(tmp_path)) == [1, 2, 3, 4]
    keep(tmp_path, [2], 4)                              # ... or a fresh job reuses the directory
    assert averaging.kept_checkpoints(str(tmp_path)) == [1, 2]


def test_the_average_is_the_float64_mean_in_each_dtype(tmp_path):
    keep(tmp_path, [1, 2, 3], 3)
    paths = [averaging.kept_path(str(tmp_path), n) for n in (1, 2, 3)]
    averaged = averaging.average_parameter_files(paths)
    for name in ("encoder.w", "decoder.b"):
        expected = np.mean([parameters_of(n)[name].astype(np.float64) for n in (1, 2, 3)], axis=0)
        assert averaged[name].dtype == np.float32
        np.testing.assert_allclose(averaged[name].asnumpy(), expected, rtol=1e-6)


def test_fewer_checkpoints_than_n_average_what_exists(tmp_path):
    keep(tmp_path, [1, 2], 5)
    assert averaging.checkpoints_to_average(str(tmp_path), 2, 5) == [1, 2]
    assert averaging.checkpoints_to_average(str(tmp_path / "nothing"), 2, 5) == []


def test_a_missing_file_is_left_out_with_a_warning(tmp_path, caplog):
    keep(tmp_path, [1, 2, 3], 3)
    os.remove(averaging.kept_path(str(tmp_path), 2))
    assert averaging.checkpoints_to_average(str(tmp_path), 3, 3) == [1, 3]
    assert "checkpoint(s) 2 are not in" in caplog.text


def test_a_damaged_or_different_file_is_named(tmp_path):
    keep(tmp_path, [1, 2], 2)
    broken = averaging.kept_path(str(tmp_path), 2)
    with open(broken, "wb") as stream:
        stream.write(b"not parameters")
    with pytest.raises(CheckpointError, match="params.00002 cannot be loaded"):
        averaging.average_parameter_files([averaging.kept_path(str(tmp_path), 1), broken])
    mx.nd.save(broken, {"encoder.w": mx.nd.zeros((3, 5)), "decoder.b": mx.nd.zeros((5,))})
    with pytest.raises(CheckpointError, match=r"params.00002 holds encoder.w of shape \(3, 5\)"):
        averaging.average_parameter_files([averaging.kept_path(str(tmp_path), 1), broken])
    mx.nd.save(broken, {"encoder.w": mx.nd.zeros((3, 4))})
    with pytest.raises(CheckpointError, match="params.00002 holds other parameters"):
        averaging.average_parameter_files([averaging.kept_path(str(tmp_path), 1), broken])


def test_a_failing_write_keeps_the_earlier_files_and_names_the_file(tmp_path):
    keep(tmp_path, [1, 2], 3)

    def full_disk(path):
        with open(path, "wb") as stream:
            stream.write(b"partial")
        raise OSError(28, "No space left on device")
    with pytest.raises(StorageError, match="params.00003: No space left on device"):
        averaging.keep_checkpoint_parameters(str(tmp_path), 3, 3, full_disk)
    assert averaging.kept_checkpoints(str(tmp_path)) == [1, 2]
    assert sorted(os.listdir(averaging.kept_dir(str(tmp_path)))) == ["params.00001", "params.00002"]


def test_a_temporary_file_of_a_killed_write_is_removed_at_the_next_checkpoint(tmp_path):
    keep(tmp_path, [1], 3)
    leftover = os.path.join(averaging.kept_dir(str(tmp_path)), ".params.00002.abc123.tmp")
    with open(leftover, "wb") as stream:
        stream.write(b"half a parameter file")
    keep(tmp_path, [2], 3)
    assert sorted(os.listdir(averaging.kept_dir(str(tmp_path)))) == ["params.00001", "params.00002"]
