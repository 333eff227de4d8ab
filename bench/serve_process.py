"""`container/serve` as a child process on a free loopback port (used by bench.bench_serve)."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVE = REPO_ROOT / "container" / "serve"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """Context manager: start `serve` with SAGEMAKER_BASE_DIR=`base_dir`, wait for /ping, SIGTERM on exit."""

    def __init__(self, base_dir: Path, log_path: Path, startup_timeout_s: float = 300.0, **env):
        self.base_dir = Path(base_dir)
        self.log_path = Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = env
        self.process = None

    def __enter__(self) -> "ServeProcess":
        env = dict(os.environ)
        env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                    "SAGEMAKER_BASE_DIR": str(self.base_dir), "SAGEMAKER_BIND_TO_PORT": str(self.port),
                    "SEQ2SEQ_BIND_HOST": "127.0.0.1"})
        env.setdefault("OMP_NUM_THREADS", "2")
        env.update(self.extra_env)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen([str(SERVE)], env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}; log {self.log_path}")
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"serve not ready after {self.startup_timeout_s} s; log {self.log_path}")

    def settings(self) -> dict:
        """What the server reports about itself (/execution-parameters) plus its worker count."""
        parameters = requests.get(self.url + "/execution-parameters", timeout=5).json()
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        parameters["workers"] = len(children.read_text().split()) if children.exists() else None
        return parameters

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
