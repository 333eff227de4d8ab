"""One clear line for a failure that reaches a user: the failure file, an HTTP body, `translate`'s stderr.

MXNet raises MXNetError whose text is a C++ traceback ("Traceback (most recent call last):",
`File "../src/ndarray/ndarray.cc", line 1858`, then "MXNetError: Check failed: ..."). Users get the
last, meaningful line only (the full trace goes to the log). GPU out-of-memory, the most common GPU
failure, is recognised and turned into advice that names the device and the setting to lower.
"""

import re
from typing import Optional

MAX_CHARS = 300
_TRACE_LINE = re.compile(r'^(Traceback \(most recent call last\)|File "|\[bt\]|Stack trace|\d+: )')
_SOURCE_REFERENCE = re.compile(r"\S*\.(cc|cu|h|cpp|cuh)\b(:\d+)?:?\s*")
_LOG_PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")
_OUT_OF_MEMORY = re.compile(r"out of memory|cudaErrorMemoryAllocation|memory allocation failed|failed to allocate|"
                            r"CUDNN_STATUS_ALLOC_FAILED|CUBLAS_STATUS_ALLOC_FAILED|std::bad_alloc", re.IGNORECASE)
_MEMORY_FIGURE = re.compile(r"\d[\d,.]*\s*(?:bytes|[KMGT]i?B)\b", re.IGNORECASE)


def one_line(error: BaseException) -> str:
    """The error's last meaningful line, without traceback frames, source file references or the
    "MXNetError: " prefix, at most MAX_CHARS characters; the exception's type name when it has no text."""
    lines = []
    for raw in str(error).splitlines():
        line = _LOG_PREFIX.sub("", raw.strip())
        if not line or _TRACE_LINE.match(line):
            continue
        lines.append(_SOURCE_REFERENCE.sub("", line).strip())
    text = next((line for line in reversed(lines) if line), type(error).__name__)
    text = re.sub(r"^(mxnet\.base\.)?MXNetError:\s*", "", text)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 3] + "..."


def is_out_of_memory(error: BaseException) -> bool:
    """True for an allocation failure (GPU or host) reported by MXNet, CUDA, cuDNN or cuBLAS."""
    return isinstance(error, MemoryError) or bool(_OUT_OF_MEMORY.search(str(error)))


def memory_figures(error: BaseException) -> str:
    """The sizes the error's text mentions ("2147483648 bytes", "1.5 GB"), comma-separated, or ""."""
    return ", ".join(match.group(0) for match in _MEMORY_FIGURE.finditer(str(error)))


def out_of_memory_advice(error: BaseException, device: str, what: str, lower: str) -> str:
    """"<what> ran out of memory on <device> (MXNet: <one line>[; sizes: ...]); <lower>"."""
    figures = memory_figures(error)
    sizes = f"; sizes: {figures}" if figures else ""
    return f"{what} ran out of memory on {device} (MXNet: {one_line(error)}{sizes}); {lower}"


def training_out_of_memory(error: BaseException, devices: str, batch_size: Optional[int]) -> str:
    """The failure line of a training job that ran out of (GPU) memory: a user error with what to lower."""
    batch = f"batch_size (now {batch_size})" if batch_size is not None else "batch_size"
    return out_of_memory_advice(
        error, f"devices={devices}", "training",
        f"lower the hyperparameter {batch}, max_seq_len_source/max_seq_len_target or rnn_num_hidden, "
        f"spread the batch over more GPUs (devices), or use an instance with more GPU memory")
