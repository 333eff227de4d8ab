"""`container/serve` for the benchmarks (bench.bench_serve, bench.bench_soak, bench.gpu_smoke): the demo's
ServerProcess with the benchmarks' timeouts, and what the server reports about itself."""
from pathlib import Path

import requests

from demo.server_process import ServerProcess


class ServeProcess(ServerProcess):
    """Context manager: start `serve` with SAGEMAKER_BASE_DIR=`base_dir` and the variables `env` on top, wait
    up to `startup_timeout_s` for /ping; on exit SIGTERM, SIGKILL after 60 s."""

    def __init__(self, base_dir: Path, log_path: Path, startup_timeout_s: float = 300.0, serve: str = None, **env):
        extra = {"serve": serve} if serve else {}
        super().__init__(base_dir, log_path, env=env, ready_timeout_s=startup_timeout_s, stop_timeout_s=60.0,
                         **extra)

    def settings(self) -> dict:
        """What the server reports about itself (/execution-parameters) plus its worker count."""
        parameters = requests.get(self.url + "/execution-parameters", timeout=5).json()
        workers = self.worker_pids()
        parameters["workers"] = None if workers is None else len(workers)
        return parameters
