"""`container/serve` for real: gunicorn on a free loopback port serving a tiny untrained model.

One server is shared by the module; the SIGTERM drain test starts its own.
"""
import json
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from demo.server_process import SERVE, ServerProcess, free_port, serve_environment
from seq2seq import client
from seq2seq.data.vocab import build_vocabulary
from tests.untrained_model import save_untrained_model
from seq2seq.inference.translator import Translator

SENTENCES = ["ein hund läuft im park", "zwei kinder spielen", "eine frau mit einem roten hut sitzt auf einer bank",
             "ein mann", "kinder spielen im park mit einem hund", "", "ein unbekanntes wort"]
STARTUP_TIMEOUT_S = 90
pytestmark = pytest.mark.slow


# What every server of these tests runs with, under the variables a test adds.
TEST_SETTINGS = {"SEQ2SEQ_NUM_GPUS": "0", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1", "SEQ2SEQ_BATCH_WAIT_MS": "20",
                 "SEQ2SEQ_GRACEFUL_TIMEOUT": "20"}


class Server(ServerProcess):
    """`container/serve` with one worker, TEST_SETTINGS and `env`, run from `base_dir`; call start()."""

    def __init__(self, base_dir: Path, log_path: Path, **env):
        super().__init__(base_dir, log_path, workers=1, env={**TEST_SETTINGS, **env},
                         ready_timeout_s=STARTUP_TIMEOUT_S, stop_timeout_s=30, cwd=str(base_dir))


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
        server.start()
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
    env = serve_environment(tmp_path, free_port(), workers=1, extra=TEST_SETTINGS)
    result = subprocess.run([SERVE], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"model directory {tmp_path / 'model'} does not exist" in result.stderr


def test_ping_and_execution_parameters(server):
    assert requests.get(server.url + "/ping", timeout=2).status_code == 200
    parameters = requests.get(server.url + "/execution-parameters", timeout=2).json()
    assert parameters == {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 1}


def test_model_is_loaded_in_the_worker_never_in_the_master(server):
    master = server.process.pid
    workers = server.worker_pids()
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
        server.start()
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
        assert server.process.wait(40) == 0, server.log_text()
        thread.join(10)
        assert outcome["response"].status_code == 200
        assert len(outcome["response"].json()["predictions"]) == len(SENTENCES)
        assert outcome["finished"] > terminated
        assert "Handling signal: term" in server.log_text()
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/ping", timeout=2)
    finally:
        server.stop()
