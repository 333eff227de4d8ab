"""No 5xx once /ping has said 200: real gunicorn with 2 workers, one of which loads its model seconds later.

slow_model_load/sitecustomize.py (on the server's PYTHONPATH) makes every worker but the first to load wait
SLOW_LOAD_S more, so the first /ping 200 comes while the other worker is still loading, and a worker restarted
by gunicorn after a worker died loads slowly too. Requests sent from the moment /ping first says 200, and while
a replacement worker loads, must all be answered 200 (or 4xx): a worker takes no connection before its model is
loaded.
"""
import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from demo.server_process import ServerProcess
from tests.integration.test_gunicorn_serve import SENTENCES, STARTUP_TIMEOUT_S, TEST_SETTINGS, model_dir  # noqa: F401

pytestmark = pytest.mark.slow
SLOW_LOAD_S = 6.0
SLOW_LOAD_DIR = Path(__file__).resolve().parent / "slow_model_load"


def slow_loading_server(model_dir: Path, tmp_path: Path, **env) -> ServerProcess:
    python_path = os.pathsep.join(p for p in (str(SLOW_LOAD_DIR), os.environ.get("PYTHONPATH")) if p)
    settings = {**TEST_SETTINGS, "PYTHONPATH": python_path, "SEQ2SEQ_TEST_SLOW_LOAD_S": str(SLOW_LOAD_S),
                "SEQ2SEQ_TEST_SLOW_LOAD_MARKER": str(tmp_path / "first-load"), **env}
    return ServerProcess(str(model_dir.parent), str(tmp_path / "serve.log"), workers=2, env=settings,
                         ready_timeout_s=STARTUP_TIMEOUT_S, stop_timeout_s=30, cwd=str(model_dir.parent))


def hammer(url: str, seconds: float, threads: int = 6) -> Counter:
    """Alternate /ping and one-sentence /invocations from `threads` threads, each on a new connection, for
    `seconds`; returns the count of each status code (and of connection errors, as their type name)."""
    deadline = time.monotonic() + seconds

    def client(index: int) -> Counter:
        seen = Counter()
        count = 0
        while time.monotonic() < deadline:
            count += 1
            try:
                if count % 2:
                    response = requests.get(url + "/ping", timeout=30)
                else:
                    sentence = SENTENCES[(index + count) % len(SENTENCES)]
                    response = requests.post(url + "/invocations", json={"instances": [{"data": sentence}]},
                                             timeout=30)
                seen[response.status_code] += 1
                if response.status_code >= 500:
                    seen[f"{response.status_code}: {response.text[:120]}"] += 1
            except requests.RequestException as error:
                seen[type(error).__name__] += 1
        return seen

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(client, range(threads)), Counter())


LOADED = "accepts requests: model loaded"


def wait_for_loads(server: ServerProcess, count: int, timeout_s: float = 90) -> int:
    """Wait until the log shows `count` workers that loaded their model; returns the count seen."""
    deadline = time.monotonic() + timeout_s
    while server.log_text().count(LOADED) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return server.log_text().count(LOADED)


def server_errors(statuses: Counter) -> dict:
    return {key: n for key, n in statuses.items() if not (isinstance(key, int) and key < 500)}


def test_requests_right_after_the_first_ping_200_never_get_a_5xx(model_dir, tmp_path):  # noqa: F811
    server = slow_loading_server(model_dir, tmp_path)
    try:
        server.start()                        # returns at the first /ping 200
        loaded_at_start = server.log_text().count(LOADED)
        statuses = hammer(server.url, SLOW_LOAD_S + 2)
        loaded = wait_for_loads(server, 2)
    finally:
        server.stop()
    assert statuses[200] > 20, statuses
    assert server_errors(statuses) == {}, statuses
    assert (loaded_at_start, loaded) == (1, 2), server.log_tail()   # the slow worker loaded while requests came


def test_a_replacement_worker_takes_no_request_before_its_model_is_loaded(model_dir, tmp_path):  # noqa: F811
    """A worker dies (SIGKILL); gunicorn starts a replacement, which loads slowly while the other one serves.

    (A worker stopped while it holds accepted connections drops them, whatever the readiness: gunicorn's gthread
    worker closes connections it accepted but has not read yet. So the worker is killed before the requests.)
    """
    server = slow_loading_server(model_dir, tmp_path)
    try:
        server.start()
        time.sleep(SLOW_LOAD_S + 1)                                   # both workers up
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            workers = server.worker_pids()
            if len(workers) == 2 and victim not in workers:
                break
            time.sleep(0.05)
        loaded_at_start = server.log_text().count(LOADED)
        statuses = hammer(server.url, SLOW_LOAD_S + 2)
        loaded = wait_for_loads(server, 3)
    finally:
        server.stop()
    assert victim not in workers and len(workers) == 2, server.log_tail()
    assert statuses[200] > 20, statuses
    assert server_errors(statuses) == {}, statuses
    assert (loaded_at_start, loaded) == (2, 3), server.log_tail()   # the replacement loaded while requests came


HOSTILE = [  # (body, headers, expected status): what tests/bad_inputs sends the app, here through real gunicorn
    (b"a,b", {"Content-Type": "text/csv"}, 415),
    (b'{"instances": []}', {"Content-Type": "application/json", "Accept": "text/html"}, 406),
    (b'{"instances": [{"data": "ein', {"Content-Type": "application/json"}, 400),
    (b'{"instances": [{"data": 1}]}', {"Content-Type": "application/json"}, 400),
    (b'{"instances": [{"data": "ein hund"}], "configuration": {"beam_size": 1000}}',
     {"Content-Type": "application/json"}, 400),
    (b"[" * 100000, {"Content-Type": "application/json"}, 400),
    (b'{"instances": [{"data": "\xff\xfe"}]}', {"Content-Type": "application/json"}, 400),
    (b"\x00" * 16, {"Content-Type": "application/x-recordio-protobuf"}, 400),
    (b"x" * (1024 * 1024 + 1), {"Content-Type": "application/jsonlines"}, 413),
    (b'{"instances": [{"data": "ein hund im park"}]}', {"Content-Type": "application/json"}, 200),
]


def test_hostile_requests_from_the_first_ping_200_get_their_4xx_never_a_5xx(model_dir, tmp_path):  # noqa: F811
    server = slow_loading_server(model_dir, tmp_path)
    try:
        server.start()
        deadline = time.monotonic() + SLOW_LOAD_S + 2

        def client(index: int) -> list:
            wrong = []
            count = index
            while time.monotonic() < deadline:
                body, headers, expected = HOSTILE[count % len(HOSTILE)]
                count += 1
                try:
                    response = requests.post(server.url + "/invocations", data=body, headers=headers, timeout=30)
                except requests.RequestException as error:
                    wrong.append((expected, type(error).__name__))
                    continue
                if response.status_code != expected:
                    wrong.append((expected, response.status_code, response.text[:200]))
            return wrong

        loaded_at_start = server.log_text().count(LOADED)
        with ThreadPoolExecutor(max_workers=6) as pool:
            wrong = sum(pool.map(client, range(6)), [])
        loaded = wait_for_loads(server, 2)
    finally:
        server.stop()
    assert wrong == []
    assert (loaded_at_start, loaded) == (1, 2), server.log_tail()
