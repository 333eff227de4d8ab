"""Atomic file output: write to a temporary file in the target directory, then rename over."""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_output(path, buffering: int = 1 << 20):
    """Context manager yielding a binary stream; on success the data replaces `path` at once.

    On an exception the temporary file is removed and `path` is left untouched.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                         dir=directory)
    try:
        with os.fdopen(handle, "wb", buffering=buffering) as stream:
            yield stream
        os.chmod(temp_path, 0o644)
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_path)
        raise


def write_bytes_atomically(path, data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_output(path) as stream:
        stream.write(data)


def write_text_atomically(path, text: str) -> None:
    """Replace `path` with UTF-8 `text` atomically."""
    write_bytes_atomically(path, text.encode("utf-8"))
