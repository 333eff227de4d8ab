"""Read text corpora as blocks of whole lines, and parallel corpora as aligned block pairs.

Lines end at "\\n", "\\r\\n" or a lone "\\r" (Python's universal newlines, as SageMaker's script
reads them); blocks hold whole lines, each ending in "\\n". Files ending in `.gz` are
decompressed. Memory stays bounded by the block size whatever the file size.
"""

import gzip
import os

import numpy as np

from seq2seq.errors import UserError

DEFAULT_BLOCK_BYTES = 1 << 20


def open_binary(path):
    """Open a (possibly gzip-compressed) file for binary reading; UserError naming it on failure."""
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None


class LineBlocks:
    """A text file read in blocks of whole lines; `lines_taken` counts lines handed out."""

    def __init__(self, path, block_bytes: int = DEFAULT_BLOCK_BYTES):
        self.path = os.fspath(path)
        self._stream = open_binary(self.path)
        self._block_bytes = block_bytes
        self._pending = b""           # whole lines, normalized, not yet handed out
        self._tail = b""              # a partial last line
        self._eof = False
        self._size = os.path.getsize(self.path)
        self.lines_taken = 0

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    @property
    def fraction_done(self) -> float:
        """Share of the file's (compressed) bytes read so far, 0..1."""
        try:
            position = self._stream.fileobj.tell() if hasattr(self._stream, "fileobj") else self._stream.tell()
        except (OSError, ValueError):
            return 0.0
        return min(1.0, position / self._size) if self._size else 1.0

    def available_lines(self) -> int:
        """Whole lines buffered, reading a block first if none is; 0 only at the end of the file."""
        while not self._pending.count(b"\n") and not self._eof:
            self._read_block()
        return self._pending.count(b"\n")

    def _read_block(self) -> None:
        chunk = self._stream.read(self._block_bytes)
        if not chunk:
            self._eof = True
            data, self._tail = _normalize_newlines(self._tail), b""
            if data and not data.endswith(b"\n"):
                data += b"\n"
            self._pending += data
            return
        data, held = self._tail + chunk, b""
        if data.endswith(b"\r"):
            data, held = data[:-1], b"\r"           # it may be the first half of "\r\n"
        data = _normalize_newlines(data)
        cut = data.rfind(b"\n") + 1
        self._pending += data[:cut]
        self._tail = data[cut:] + held

    def take(self, count: int) -> bytes:
        """The next `count` buffered lines as one UTF-8-checked block."""
        pending = self._pending
        if pending.count(b"\n") == count:
            block, self._pending = pending, b""
        else:
            newlines = np.flatnonzero(np.frombuffer(pending, dtype=np.uint8) == 10)
            cut = int(newlines[count - 1]) + 1
            block, self._pending = pending[:cut], pending[cut:]
        self._check_utf8(block)
        self.lines_taken += count
        return block

    def _check_utf8(self, block: bytes) -> None:
        try:
            block.decode("utf-8")
        except UnicodeDecodeError as error:
            line_start = block.rfind(b"\n", 0, error.start) + 1
            line = self.lines_taken + block.count(b"\n", 0, error.start) + 1
            raise UserError(f"{self.path}, line {line}: invalid UTF-8 byte 0x{block[error.start]:02x} "
                            f"at column {error.start - line_start + 1} (byte {error.start - line_start} "
                            "of the line)") from None

    def count_remaining_lines(self) -> int:
        """Lines not handed out yet (reads the rest of the file)."""
        total = 0
        while self.available_lines():
            total += self._pending.count(b"\n")
            self._pending = b""
        return total


def _normalize_newlines(data: bytes) -> bytes:
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def iter_blocks(lines: LineBlocks):
    """Blocks of whole lines of one file."""
    while True:
        count = lines.available_lines()
        if not count:
            return
        yield lines.take(count)


def iter_parallel_blocks(source: LineBlocks, target: LineBlocks):
    """(source block, target block, line count) with equally many lines; UserError on a mismatch."""
    while True:
        source_lines, target_lines = source.available_lines(), target.available_lines()
        if not source_lines or not target_lines:
            if source_lines or target_lines:
                _raise_mismatch(source, target)
            return
        count = min(source_lines, target_lines)
        yield source.take(count), target.take(count), count


def _raise_mismatch(source: LineBlocks, target: LineBlocks):
    source_total = source.lines_taken + source.count_remaining_lines()
    target_total = target.lines_taken + target.count_remaining_lines()
    raise UserError(f"parallel files differ in length: {source.path} has {source_total} lines, "
                    f"{target.path} has {target_total} lines")
