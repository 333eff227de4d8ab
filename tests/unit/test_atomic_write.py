"""seq2seq.atomic_write: the target is replaced whole or not at all, with no temporary file left behind."""

import json
import os
import stat

import mxnet as mx
import numpy as np
import pytest

from seq2seq import atomic_write


class Refused(Exception):
    pass


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def only_target_in(directory, name):
    assert sorted(os.listdir(directory)) == [name]


@pytest.fixture
def old_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old content")
    return path


def test_atomic_output_replaces_the_file_with_mode_0644(old_file):
    os.chmod(old_file, 0o600)
    with atomic_write.atomic_output(old_file) as stream:
        stream.write(b"new ")
        assert old_file.read_bytes() == b"old content"   # nothing is visible before the block ends
        stream.write(b"content")
    assert old_file.read_bytes() == b"new content"
    assert mode_of(old_file) == 0o644
    only_target_in(old_file.parent, old_file.name)


@pytest.mark.parametrize("error", [Refused("half written"), KeyboardInterrupt()])
def test_atomic_output_that_raises_leaves_the_target_untouched_and_no_temporary_file(old_file, error):
    with pytest.raises(type(error)):
        with atomic_write.atomic_output(old_file) as stream:
            stream.write(b"partial")
            raise error
    assert old_file.read_bytes() == b"old content"
    only_target_in(old_file.parent, old_file.name)


def test_a_new_file_that_fails_is_not_created(tmp_path):
    with pytest.raises(Refused):
        with atomic_write.atomic_output(tmp_path / "new.bin") as stream:
            stream.write(b"partial")
            raise Refused()
    assert os.listdir(tmp_path) == []


def test_write_bytes_text_and_json(tmp_path):
    atomic_write.write_bytes(tmp_path / "a.bin", b"\x00\xff", fsync=True)
    atomic_write.write_text(tmp_path / "b.txt", "Zoë — naïve\n")
    atomic_write.write_json(tmp_path / "c.json", {"b": 1, "a": "café"})
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\xff"
    assert (tmp_path / "b.txt").read_bytes() == "Zoë — naïve\n".encode("utf-8")
    text = (tmp_path / "c.json").read_text(encoding="utf-8")
    assert text == '{\n  "a": "café",\n  "b": 1\n}'           # indent 2, sorted keys, non-ASCII kept
    assert json.loads(text) == {"a": "café", "b": 1}
    assert {mode_of(tmp_path / name) for name in ("a.bin", "b.txt", "c.json")} == {0o644}
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.txt", "c.json"]


def test_write_json_of_an_unserialisable_value_keeps_the_old_file(old_file):
    with pytest.raises(TypeError):
        atomic_write.write_json(old_file, {"x": object()})
    assert old_file.read_bytes() == b"old content"
    only_target_in(old_file.parent, old_file.name)


def test_write_with_renames_what_the_path_writer_wrote(old_file):
    seen = []

    def save_to_path(temp_path):
        seen.append(temp_path)
        assert os.path.dirname(temp_path) == str(old_file.parent)   # same directory: the rename is atomic
        assert temp_path != str(old_file)
        with open(temp_path, "wb") as stream:
            stream.write(b"written by the library")
    atomic_write.write_with(old_file, save_to_path)
    assert old_file.read_bytes() == b"written by the library"
    assert mode_of(old_file) == 0o644
    assert len(seen) == 1 and not os.path.exists(seen[0])
    only_target_in(old_file.parent, old_file.name)


def test_write_with_a_path_writer_that_replaces_the_temporary_file(tmp_path):
    """A library may delete and recreate the file it is given (unlink, then open)."""
    def save_to_path(temp_path):
        os.remove(temp_path)
        with open(temp_path, "wb") as stream:
            stream.write(b"recreated")
    atomic_write.write_with(tmp_path / "out", save_to_path)
    assert (tmp_path / "out").read_bytes() == b"recreated"
    only_target_in(tmp_path, "out")


def test_a_failing_path_writer_leaves_the_old_file(old_file):
    def save_to_path(temp_path):
        with open(temp_path, "wb") as stream:
            stream.write(b"half")
        raise OSError(28, "No space left on device", temp_path)
    with pytest.raises(OSError) as raised:
        atomic_write.write_with(old_file, save_to_path)
    assert raised.value.errno == 28                      # the error itself, not wrapped
    assert old_file.read_bytes() == b"old content"
    only_target_in(old_file.parent, old_file.name)


def test_write_with_mxnet_nd_save_and_a_failing_one(tmp_path):
    path = tmp_path / "arrays.params"
    atomic_write.write_with(path, lambda temp: mx.nd.save(temp, {"x": mx.nd.ones((2, 3))}))
    np.testing.assert_array_equal(mx.nd.load(str(path))["x"].asnumpy(), np.ones((2, 3)))
    before = path.read_bytes()

    def full_disk(temp):   # what MXNet does when the disk fills: an MXNetError from its file stream
        mx.nd.save("/dev/full", {"x": mx.nd.ones((256, 256))})
    with pytest.raises(mx.base.MXNetError):
        atomic_write.write_with(path, full_disk)
    assert path.read_bytes() == before
    only_target_in(tmp_path, path.name)


def test_a_directory_that_cannot_be_written_raises_oserror_and_keeps_the_file(old_file):
    if os.geteuid() == 0:
        pytest.skip("root may write into a read-only directory")
    os.chmod(old_file.parent, 0o555)
    try:
        with pytest.raises(PermissionError):
            atomic_write.write_bytes(old_file, b"new")
    finally:
        os.chmod(old_file.parent, 0o755)
    assert old_file.read_bytes() == b"old content"
    only_target_in(old_file.parent, old_file.name)


def test_checkpoint_writes_turn_write_errors_into_storage_error_and_keep_the_previous_file(old_file):
    from seq2seq.errors import StorageError
    from seq2seq.training.training_state import save_file_atomically

    def no_space(temp_path):
        raise OSError(28, "No space left on device", temp_path)
    with pytest.raises(StorageError) as raised:
        save_file_atomically(str(old_file), no_space, "the previous best parameters are intact")
    assert str(raised.value) == (f"cannot write {old_file}: No space left on device (ENOSPC); "
                                 "the previous best parameters are intact")
    with pytest.raises(StorageError, match=r"FileStream.Write incomplete \(the disk is probably full\); "
                                           r"no best parameters were written$"):
        save_file_atomically(str(old_file), lambda temp: mx.nd.save("/dev/full", {"x": mx.nd.ones((256, 256))}),
                             "no best parameters were written")
    assert old_file.read_bytes() == b"old content"
    only_target_in(old_file.parent, old_file.name)

    def refuse(temp_path):
        raise Refused()
    with pytest.raises(Refused):                        # anything else propagates as it is
        save_file_atomically(str(old_file), refuse, "intact")
    only_target_in(old_file.parent, old_file.name)
