"""Serving settings read from the environment (SageMaker's variables plus a few of our own).

This module must stay importable in the gunicorn master: it imports neither MXNet nor Flask, and it
detects GPUs without initialising CUDA (CUDA does not survive `fork`).

Variables:
    SAGEMAKER_BIND_TO_PORT          port to listen on (default 8080)
    SEQ2SEQ_BIND_HOST               address to listen on (default 0.0.0.0; 127.0.0.1 for local tests)
    SAGEMAKER_MODEL_SERVER_WORKERS  gunicorn workers (default: one per GPU, else `default_cpu_workers()`)
    SAGEMAKER_MODEL_SERVER_TIMEOUT  seconds a request may take (default 60)
    SAGEMAKER_MAX_PAYLOAD_IN_MB     largest request body in MB (default 6; 0 means no limit)
    SAGEMAKER_BASE_DIR              replaces /opt/ml; the model is read from <base>/model
    SAGEMAKER_BATCH_STRATEGY, SAGEMAKER_MAX_CONCURRENT_TRANSFORMS   reported by /execution-parameters
    SEQ2SEQ_BATCH_WAIT_MS           how long the decoder waits to gather concurrent requests (default 5 ms)
    SEQ2SEQ_MAX_BATCH_SENTENCES     most sentences decoded together from different requests (default 64)
    SEQ2SEQ_WORKER_THREADS          request threads per worker (default 32)
    SEQ2SEQ_GRACEFUL_TIMEOUT        seconds in-flight requests get after SIGTERM (default 25, under
                                    SageMaker's 30 s before SIGKILL)
    SEQ2SEQ_NUM_GPUS                overrides GPU detection (0 forces CPU)
    SEQ2SEQ_ACCESS_LOG              1 (or true) writes gunicorn's access log to stdout (default 0)
    SEQ2SEQ_BODY_TIMEOUT            seconds a request body may pause between two reads before the request
                                    is answered 408 and closed (default 30)
    SEQ2SEQ_DRAIN_LIMIT_MB          an over-limit body up to this size is read and discarded before the 413,
                                    so that clients which send the whole body first (urllib, requests) read
                                    the answer; larger ones are answered at once and the connection closed
                                    (default 100)
    SEQ2SEQ_MODEL_PAGE              1 (default) serves the model page at GET / (type sentences, read the
                                    translations and their attention); 0 (or false) answers 404 there.
                                    SageMaker routes only /ping and /invocations, so it is reachable only
                                    where the server runs outside SageMaker (locally, `docker run -p`)
    SEQ2SEQ_WORKER_DEVICE           the device a worker loads the model on, "cpu" or "gpu:<i>"; set for each
                                    worker by container/gunicorn.conf.py (default gpu:0 with GPUs, else cpu)

Every number, flag and choice is parsed by seq2seq.typed_values; a bad one is a UserError naming
the variable and its value.
"""
import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping, Optional

from seq2seq.typed_values import Bool, Choice, Float, Int, Pattern, read_environment

DEFAULT_BASE_DIR = "/opt/ml"
MODEL_SUBDIR = "model"
BATCH_STRATEGIES = ("SINGLE_RECORD", "MULTI_RECORD")
WORKER_DEVICE_VARIABLE = "SEQ2SEQ_WORKER_DEVICE"
DEVICE = Pattern(r"cpu|gpu:[0-9]+", "cpu or gpu:<i>")


@dataclass(frozen=True)
class ServingSettings:
    """Everything the server needs to know before it loads a model."""

    port: int = 8080
    host: str = "0.0.0.0"
    workers: int = 1
    worker_threads: int = 32
    timeout_s: int = 60
    graceful_timeout_s: int = 25
    max_payload_mb: float = 6.0
    base_dir: str = DEFAULT_BASE_DIR
    batch_wait_ms: float = 5.0
    max_batch_sentences: int = 64
    num_gpus: int = 0
    batch_strategy: str = "MULTI_RECORD"
    max_concurrent_transforms: int = 1
    access_log: bool = False
    body_timeout_s: float = 30.0
    drain_limit_mb: float = 100.0
    model_page: bool = True   # GET / serves seq2seq/serving/page.html
    device: str = "cpu"  # where this worker loads the model: "cpu" or "gpu:<i>"

    @property
    def model_dir(self) -> str:
        """The directory SageMaker unpacks `model.tar.gz` into."""
        return os.path.join(self.base_dir, MODEL_SUBDIR)

    @property
    def max_payload_bytes(self) -> Optional[int]:
        """Largest accepted request body in bytes; None when unlimited (MaxPayloadInMB 0)."""
        if self.max_payload_mb == 0:
            return None
        return int(self.max_payload_mb * 1024 * 1024)

    @property
    def drain_limit_bytes(self) -> int:
        """Most bytes of an over-limit body read and discarded before answering 413."""
        return int(self.drain_limit_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = None) -> "ServingSettings":
        """Read the settings; a malformed variable raises UserError naming it."""
        env = os.environ if environ is None else environ

        def read(name, kind, default):
            return read_environment(env, name, kind, default)

        num_gpus = read("SEQ2SEQ_NUM_GPUS", Int(0), None)
        if num_gpus is None:
            num_gpus = detect_gpu_count(env)
        default_workers = num_gpus if num_gpus > 0 else default_cpu_workers()
        workers = read("SAGEMAKER_MODEL_SERVER_WORKERS", Int(1), default_workers)
        return cls(
            port=read("SAGEMAKER_BIND_TO_PORT", Int(1, 65535), 8080),
            host=(env.get("SEQ2SEQ_BIND_HOST") or "0.0.0.0").strip(),
            workers=workers,
            worker_threads=read("SEQ2SEQ_WORKER_THREADS", Int(1, 1024), 32),
            timeout_s=read("SAGEMAKER_MODEL_SERVER_TIMEOUT", Int(1), 60),
            graceful_timeout_s=read("SEQ2SEQ_GRACEFUL_TIMEOUT", Int(0), 25),
            max_payload_mb=read("SAGEMAKER_MAX_PAYLOAD_IN_MB", Float(0.0), 6.0),
            base_dir=env.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE_DIR,
            batch_wait_ms=read("SEQ2SEQ_BATCH_WAIT_MS", Float(0.0, 10000.0), 5.0),
            max_batch_sentences=read("SEQ2SEQ_MAX_BATCH_SENTENCES", Int(1), 64),
            num_gpus=num_gpus,
            batch_strategy=read("SAGEMAKER_BATCH_STRATEGY", Choice(*BATCH_STRATEGIES), "MULTI_RECORD"),
            max_concurrent_transforms=read("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", Int(1), workers),
            access_log=read("SEQ2SEQ_ACCESS_LOG", Bool(), False),
            body_timeout_s=read("SEQ2SEQ_BODY_TIMEOUT", Float(0.1, 3600.0), 30.0),
            drain_limit_mb=read("SEQ2SEQ_DRAIN_LIMIT_MB", Float(0.0, 100000.0), 100.0),
            model_page=read("SEQ2SEQ_MODEL_PAGE", Bool(), True),
            device=read(WORKER_DEVICE_VARIABLE, DEVICE, None) or worker_context(0, num_gpus),
        )


def default_cpu_workers() -> int:
    """Workers on a CPU host: one per 4 cores (at least one).

    Each worker decodes with several OpenMP threads and gathers concurrent requests into shared
    batches, so one worker per core would only fight over the cores and multiply the model's memory.
    """
    return max(1, (os.cpu_count() or 1) // 4)


def detect_gpu_count(environ: Mapping[str, str] = None) -> int:
    """Number of usable NVIDIA GPUs, found without initialising CUDA in this process.

    Order: CUDA_VISIBLE_DEVICES when set, else the driver's /proc entries, else `nvidia-smi -L`.
    """
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [part for part in visible.split(",") if part.strip()]
        if not ids or ids[0].strip() in ("-1", "NoDevFiles", "none"):
            return 0
        return len(ids)
    proc_gpus = glob.glob("/proc/driver/nvidia/gpus/*")
    if proc_gpus:
        return len(proc_gpus)
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def worker_context(slot: int, num_gpus: int) -> str:
    """Device of the worker in `slot` (0-based): "gpu:<slot mod num_gpus>", or "cpu" without GPUs."""
    if num_gpus <= 0:
        return "cpu"
    return f"gpu:{slot % num_gpus}"
