"""`container/serve` for real: gunicorn on a free loopback port serving a tiny untrained model.

One server is shared by the module; the SIGTERM drain test starts its own.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from seq2seq import client
from seq2seq.data.vocab import build_vocabulary
from tests.untrained_model import save_untrained_model
from seq2seq.inference.translator import Translator

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / "container" / "serve"
SENTENCES = ["ein hund läuft im park", "zwei kinder spielen", "eine frau mit einem roten hut sitzt auf einer bank",
             "ein mann", "kinder spielen im park mit einem hund", "", "ein unbekanntes wort"]
STARTUP_TIMEOUT_S = 90
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_env(base_dir: Path, port: int, **extra) -> dict:
    env = dict(os.environ)
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "SAGEMAKER_BASE_DIR": str(base_dir), "SAGEMAKER_BIND_TO_PORT": str(port),
        "SEQ2SEQ_BIND_HOST": "127.0.0.1", "SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SEQ2SEQ_NUM_GPUS": "0",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1", "SEQ2SEQ_BATCH_WAIT_MS": "20", "SEQ2SEQ_GRACEFUL_TIMEOUT": "20",
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2"),
    })
    env.update(extra)
    return env


class Server:
    def __init__(self, base_dir: Path, log_path: Path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen([str(SERVE)], env=serve_env(base_dir, self.port, **env), stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=str(base_dir), start_new_session=True)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited early:\n{self.log()}"
            if client.ping(self.url, timeout_s=1):
                return
            time.sleep(0.2)
        raise AssertionError(f"serve not ready after {STARTUP_TIMEOUT_S} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("opt_ml")
    source_vocab = build_vocabulary(s.split() for s in SENTENCES)
    target_vocab = build_vocabulary("a dog runs in the park two children play a man".split() for _ in range(2))
    save_untrained_model(str(base / "model"), source_vocab, target_vocab, seed=0, max_seq_len_source=8,
                         max_seq_len_target=16)
    return base / "model"


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    server = Server(model_dir.parent, tmp_path_factory.mktemp("logs") / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def translator(model_dir):
    return Translator.load(str(model_dir))


@pytest.fixture(scope="module")
def reference(translator):
    """Sequential decoding in this process: one sentence per call."""
    return [" ".join(translator.translate_text([s], translator.default_options)[0].target_tokens)
            for s in SENTENCES]


def test_serve_refuses_to_start_without_a_model(tmp_path):
    result = subprocess.run([str(SERVE)], env=serve_env(tmp_path, free_port()), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert f"model directory {tmp_path / 'model'} does not exist" in result.stderr


def test_ping_and_execution_parameters(server):
    assert requests.get(server.url + "/ping", timeout=2).status_code == 200
    parameters = requests.get(server.url + "/execution-parameters", timeout=2).json()
    assert parameters == {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 1}


def test_model_is_loaded_in_the_worker_never_in_the_master(server):
    master = server.process.pid
    workers = [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    assert len(workers) == 1

    def maps_mxnet(pid):
        return "libmxnet" in Path(f"/proc/{pid}/maps").read_text()

    assert not maps_mxnet(master)
    assert maps_mxnet(workers[0])


def test_json_jsonlines_and_protobuf_match_sequential_decoding(server, translator, reference):
    assert client.translate(SENTENCES, server.url) == reference
    assert client.translate_jsonlines(SENTENCES, server.url) == reference
    targets = client.translate_ids([translator.source_vocab.encode(s.split()) for s in SENTENCES], server.url)
    assert [" ".join(translator.target_vocab.decode(t)) for t in targets] == reference


def test_attention_matrix_and_truncation_header(server):
    long = "ein hund läuft im park mit einem roten hut"  # 9 tokens, the model keeps 8
    response = requests.post(server.url + "/invocations", timeout=30, json={
        "instances": [{"data": "ein mann"}, {"data": long}], "configuration": {"attention_matrix": "true"}})
    assert response.status_code == 200
    assert response.headers["X-Seq2Seq-Truncated-Instances"] == "1"
    first, second = response.json()["predictions"]
    assert len(first["matrix"]) == len(first["target"].split()) and all(len(r) == 2 for r in first["matrix"])
    assert all(len(row) == 8 for row in second["matrix"])


def test_concurrent_single_sentence_requests_match_sequential_decoding(server, reference):
    jobs = [SENTENCES[i % len(SENTENCES)] for i in range(21)]
    with requests.Session() as session, ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(lambda s: client.translate([s], server.url, session=session)[0], jobs))
    assert results == [reference[i % len(SENTENCES)] for i in range(len(jobs))]


def test_errors_come_back_as_json_with_their_status(server):
    invocations = server.url + "/invocations"
    response = requests.post(invocations, data=b"a,b", headers={"Content-Type": "text/csv"}, timeout=10)
    assert response.status_code == 415 and "text/csv" in response.json()["error"]
    response = requests.post(invocations, data=b'{"instances": [{"data": 1}]}',
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400 and "instances[0].data" in response.json()["error"]
    response = requests.post(invocations, data=b"x" * (1024 * 1024 + 1),
                             headers={"Content-Type": "application/jsonlines"}, timeout=10)
    assert response.status_code == 413 and "SAGEMAKER_MAX_PAYLOAD_IN_MB=1" in response.json()["error"]
    with pytest.raises(client.ServerError) as error:
        client.translate(["ein hund"], server.url, beam_size=1000)
    assert error.value.status == 400 and "configuration.beam_size" in error.value.message


def test_chunked_request_body(server, reference):
    lines = (json.dumps({"source": s}).encode() + b"\n" for s in SENTENCES)
    response = requests.post(server.url + "/invocations", data=lines, timeout=30,
                             headers={"Content-Type": "application/jsonlines"})
    assert response.status_code == 200
    assert [json.loads(line)["target"] for line in response.text.splitlines()] == reference


def test_sigterm_drains_the_in_flight_request_and_exits_0(model_dir, tmp_path):
    """A server whose decoder waits 2 s to gather a batch, so the request is surely in flight at SIGTERM."""
    server = Server(model_dir.parent, tmp_path / "serve.log", SEQ2SEQ_BATCH_WAIT_MS="2000")
    try:
        server.wait_ready()
        outcome = {}

        def slow_request():
            outcome["response"] = requests.post(server.url + "/invocations", timeout=60,
                                                json={"instances": [{"data": s} for s in SENTENCES]})
            outcome["finished"] = time.monotonic()

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.5)
        terminated = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(40) == 0, server.log()
        thread.join(10)
        assert outcome["response"].status_code == 200
        assert len(outcome["response"].json()["predictions"]) == len(SENTENCES)
        assert outcome["finished"] > terminated
        assert "Handling signal: term" in server.log()
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/ping", timeout=2)
    finally:
        server.stop()
