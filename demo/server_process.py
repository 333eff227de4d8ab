"""Run `container/serve` as a child process on a free loopback port, and stop it with SIGTERM.

The one implementation behind the demo (demo.run_demo), the benchmarks (bench.serve_process) and the
integration tests of the endpoint (tests/integration/test_gunicorn_serve.py).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

from seq2seq import client

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVE = os.path.join(REPO_ROOT, "container", "serve")


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice on 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def checkout_environment(base_dir: str, extra: Optional[dict] = None) -> dict:
    """The environment for container/train and container/serve run from this checkout: /opt/ml
    relocated to `base_dir`, this interpreter's directory first on PATH (their `python`) and
    OMP_NUM_THREADS=2 unless set; then `extra` on top."""
    env = dict(os.environ)
    env["SAGEMAKER_BASE_DIR"] = os.path.abspath(base_dir)
    env["PATH"] = os.pathsep.join((os.path.dirname(sys.executable), env.get("PATH", "")))
    env.setdefault("OMP_NUM_THREADS", "2")
    env.update(extra or {})
    return env


def idle_thread_settings() -> dict:
    """OpenMP threads sleep instead of spinning while they wait (OMP_WAIT_POLICY=PASSIVE, unless set):
    on a busy machine spinning threads made the demo's small model train 10x slower. Output unbuffered."""
    return {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
            "PYTHONUNBUFFERED": os.environ.get("PYTHONUNBUFFERED", "1")}


def tool_environment(base_dir: str, extra: Optional[dict] = None) -> dict:
    """checkout_environment with idle_thread_settings (what the demo runs its train and serve with)."""
    return checkout_environment(base_dir, {**idle_thread_settings(), **(extra or {})})


def serve_environment(base_dir: str, port: int, workers: Optional[int] = None, extra: Optional[dict] = None) -> dict:
    """The environment of `container/serve` on 127.0.0.1:`port` serving `<base_dir>/model`; `workers`
    sets SAGEMAKER_MODEL_SERVER_WORKERS (None: the server's default); `extra` goes on top."""
    settings = {"SAGEMAKER_BIND_TO_PORT": str(port), "SEQ2SEQ_BIND_HOST": "127.0.0.1"}
    if workers is not None:
        settings["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    return checkout_environment(base_dir, {**settings, **(extra or {})})


class ServerProcess:
    """`container/serve` serving `<base_dir>/model`; use as a context manager or call start/stop.

    `env` is added to serve_environment's; `ready_timeout_s` bounds the wait for /ping in start(),
    `stop_timeout_s` the wait after SIGTERM in stop() before SIGKILL; `cwd` is the server's working
    directory (None: this process's); `serve` the entry point (another checkout's, for benchmarks).
    """

    def __init__(self, base_dir: str, log_path: str, port: Optional[int] = None, workers: Optional[int] = None,
                 env: Optional[dict] = None, ready_timeout_s: float = 120.0, stop_timeout_s: float = 40.0,
                 cwd: Optional[str] = None, serve: str = SERVE):
        self.base_dir = base_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.workers = workers
        self.extra_env = dict(env or {})
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.cwd = cwd
        self.serve = serve
        self.process: Optional[subprocess.Popen] = None
        self.exit_code: Optional[int] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict:
        return serve_environment(self.base_dir, self.port, self.workers, self.extra_env)

    def start(self, ready_timeout_s: Optional[float] = None) -> float:
        """Start the server and wait until /ping answers 200; returns the seconds it took.

        RuntimeError, with the end of the log, when the server exits first or does not answer in time
        (then it is stopped)."""
        timeout_s = self.ready_timeout_s if ready_timeout_s is None else ready_timeout_s
        started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([self.serve], env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.cwd, start_new_session=True)
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with code {self.process.returncode} before it was ready; "
                                   f"log: {self.log_path}\n{self.log_tail()}")
            if client.ping(self.url, timeout_s=2.0):
                return time.monotonic() - started
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"serve did not answer /ping within {timeout_s:.0f} s; log: {self.log_path}\n"
                           f"{self.log_tail()}")

    def stop(self, timeout_s: Optional[float] = None) -> int:
        """SIGTERM, then wait (SIGKILL after `timeout_s`, by default stop_timeout_s); returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout_s if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.exit_code = self.process.returncode
        return self.exit_code

    def worker_pids(self) -> Optional[list]:
        """The gunicorn workers: the children of the master (`serve` execs gunicorn); None where /proc
        does not list children."""
        pid = self.process.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as stream:
                return [int(child) for child in stream.read().split()]
        except FileNotFoundError:
            return None

    def log_text(self) -> str:
        """Everything the server wrote so far (stdout and stderr), or "" if there is no log yet."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as stream:
                return stream.read()
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "".join(self.log_text().splitlines(keepends=True)[-lines:])

    def __enter__(self) -> "ServerProcess":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
