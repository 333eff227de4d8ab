"""The process settings decoding runs with, set before MXNet is imported: OpenMP threads and MXNet's engine.

`translate`, each serving worker and the decoding benchmarks call `apply()` first, so that what is measured is
what ships. A variable already set in the environment is kept (a user's choice wins).

- OMP_NUM_THREADS: the CPUs this process may use, divided among the serving workers. Unset, MXNet would
  take half the processors (`omp_get_num_procs() >> 1`): one thread on a 2-vCPU machine.
- MXNET_ENGINE_TYPE=NaiveEngine: operators run synchronously on the calling thread. A beam step is a few
  dozen small operators on arrays of a few kilobytes; handing each to the threaded engine's worker costs more
  than the operator (see the README's serving table for the measurement). Decoding processes are
  single-threaded callers (the serving worker's one decoder thread, `translate`), which NaiveEngine needs.
- OMP_WAIT_POLICY is left unset: OpenMP's default spins briefly, which halves single-sentence latency against
  PASSIVE on a machine that is not oversubscribed.
"""

import os
import sys
import tempfile
from typing import Dict

ENGINE_VARIABLE = "MXNET_ENGINE_TYPE"
DECODING_ENGINE = "NaiveEngine"
REPORTED = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", ENGINE_VARIABLE, "MXNET_MKLDNN_ENABLED")
ENGINE_START_LINE = "MXNet start using engine"     # what MXNet prints to stderr when MXNET_ENGINE_TYPE is set


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def decoding_defaults(workers: int = 1) -> Dict[str, str]:
    """The settings a decoding process gets unless its environment sets them: `workers` processes share the CPUs."""
    return {"OMP_NUM_THREADS": str(max(1, available_cpus() // max(1, workers))),
            ENGINE_VARIABLE: DECODING_ENGINE}


def apply(workers: int = 1, environ=None) -> Dict[str, str]:
    """Set the decoding defaults in `environ` (default os.environ) where unset; returns what is now in force.
    Call before MXNet is imported: it reads these once, at import."""
    environ = os.environ if environ is None else environ
    for name, value in decoding_defaults(workers).items():
        environ.setdefault(name, value)
    return describe(environ)


def describe(environ=None) -> Dict[str, str]:
    """The decoding-relevant settings of `environ` (unset ones as "unset"), and the CPUs available."""
    environ = os.environ if environ is None else environ
    described = {name: environ.get(name, "unset") for name in REPORTED}
    described["cpus"] = str(available_cpus())
    return described


def import_mxnet():
    """Import MXNet and start its engine with its start-up line ("... engine.cc:54: MXNet start using engine:
    NaiveEngine", printed whenever MXNET_ENGINE_TYPE is set) kept off stderr; anything else printed there while
    importing is passed on. For command-line tools whose stderr is for the user."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import mxnet as mx
            mx.nd.zeros((1,)).wait_to_read()                  # the engine starts with the first operator
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
    sys.stderr.write("".join(line for line in text.splitlines(keepends=True) if ENGINE_START_LINE not in line))
    return mx
