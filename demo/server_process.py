"""Run `container/serve` as a child process on a free loopback port, and stop it with SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

from seq2seq import client

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tool_environment(base_dir: str, extra: Optional[dict] = None) -> dict:
    """The environment for container/train and container/serve run from this checkout: /opt/ml
    relocated to `base_dir`, and this interpreter's directory first on PATH (their `python`).

    OpenMP threads sleep instead of spinning while they wait (OMP_WAIT_POLICY=PASSIVE, unless set):
    on a busy machine spinning threads made the demo's small model train 10x slower.
    """
    env = dict(os.environ)
    env["SAGEMAKER_BASE_DIR"] = os.path.abspath(base_dir)
    env["PATH"] = os.pathsep.join((os.path.dirname(sys.executable), env.get("PATH", "")))
    env.setdefault("OMP_NUM_THREADS", "2")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


class ServerProcess:
    """`container/serve` serving `<base_dir>/model`; use as a context manager or call start/stop."""

    def __init__(self, base_dir: str, log_path: str, port: Optional[int] = None, workers: int = 1):
        self.base_dir = base_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.workers = workers
        self.process: Optional[subprocess.Popen] = None
        self.exit_code: Optional[int] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout_s: float = 120.0) -> float:
        """Start the server and wait until /ping answers 200; returns the seconds it took."""
        started = time.monotonic()
        env = tool_environment(self.base_dir, {"SAGEMAKER_BIND_TO_PORT": str(self.port),
                                               "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.workers)})
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([os.path.join(REPO_ROOT, "container", "serve")], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = started + ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with code {self.process.returncode} before it was ready; "
                                   f"log: {self.log_path}\n{self.log_tail()}")
            if client.ping(self.url, timeout_s=2.0):
                return time.monotonic() - started
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"serve did not answer /ping within {ready_timeout_s:.0f} s; log: {self.log_path}\n"
                           f"{self.log_tail()}")

    def stop(self, timeout_s: float = 40.0) -> int:
        """SIGTERM, then wait (SIGKILL after `timeout_s`); returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.exit_code = self.process.returncode
        return self.exit_code

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as stream:
                return "".join(stream.readlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> "ServerProcess":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
