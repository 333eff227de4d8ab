"""Atomic file writes for the whole package (data, training, inference, tools).

Every writer here puts the data into a temporary file in the target's own directory (so that the rename
stays on one file system), makes it readable by all (mode 0o644), then renames it over the target with
`os.replace`. Readers therefore see either the old file or the complete new one, never a partial one. On
any exception (including KeyboardInterrupt) the temporary file is removed, the target is left as it was and
the exception propagates unchanged: wrapping it (e.g. into StorageError) is the caller's business.

`fsync=True` also flushes the data to the disk before the rename, so that a power loss cannot publish a file
whose data is still only in the page cache; it costs one disk round trip per file and is off by default.
"""

import contextlib
import json
import os
import tempfile
from typing import Callable, Iterator

FILE_MODE = 0o644


@contextlib.contextmanager
def _temporary_beside(path, fsync: bool) -> Iterator[str]:
    """Yield the path of a fresh empty temporary file next to `path`; rename it over `path` after the block."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    os.close(handle)
    try:
        yield temp_path
        os.chmod(temp_path, FILE_MODE)
        if fsync:
            with open(temp_path, "rb") as stream:
                os.fsync(stream.fileno())
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_path)
        raise


@contextlib.contextmanager
def atomic_output(path, fsync: bool = False, buffering: int = 1 << 20):
    """Context manager yielding a binary stream whose data replaces `path` at once when the block ends.

    `buffering` is the stream's buffer size in bytes. An exception inside the block leaves `path` untouched
    and no temporary file behind.
    """
    with _temporary_beside(path, fsync) as temp_path:
        with open(temp_path, "wb", buffering=buffering) as stream:
            yield stream


def write_with(path, save_to_path: Callable[[str], object], fsync: bool = False) -> None:
    """For libraries that can only write to a path name (MXNet `save_parameters`, `gluon.Trainer.save_states`,
    `nd.save`): call `save_to_path(temp_path)` with a temporary file next to `path`, then rename it over `path`.

    `save_to_path` may overwrite or replace the (empty) temporary file. If it raises, `path` keeps its old
    content, the temporary file is removed and the exception propagates.
    """
    with _temporary_beside(path, fsync) as temp_path:
        save_to_path(temp_path)


def write_bytes(path, data: bytes, fsync: bool = False) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_output(path, fsync) as stream:
        stream.write(data)


def write_text(path, text: str, fsync: bool = False) -> None:
    """Replace `path` with `text`, encoded as UTF-8, atomically."""
    write_bytes(path, text.encode("utf-8"), fsync)


def write_json(path, value, fsync: bool = False) -> None:
    """Replace `path` with `value` as UTF-8 JSON (indent 2, sorted keys, non-ASCII kept as is), atomically."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False), fsync)
