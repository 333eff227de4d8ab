"""`container/serve` over real sockets: over-limit bodies read by ordinary clients, stalled and broken
bodies, idle keep-alive connections and trickling clients.

The Flask test client cannot show any of this: the failure modes live in the kernel's TCP stack
(a reset when the server closes with unread bytes) and in gunicorn's threads.
"""
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
import requests

from seq2seq.data.vocab import build_vocabulary
from tests.untrained_model import save_untrained_model
from tests.integration.test_gunicorn_serve import Server

pytestmark = pytest.mark.slow
MB = 1024 * 1024
SIZES_MB = (7, 20, 60)
BODY_TIMEOUT_S = 2
LIMIT_TEXT = "exceeds the limit of 6291456 bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB=6)"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("opt_ml")
    words = "ein hund läuft im park zwei kinder spielen".split()
    vocab = build_vocabulary([words])
    save_untrained_model(str(base / "model"), vocab, vocab, seed=0, max_seq_len_source=8, max_seq_len_target=8)
    server = Server(base, tmp_path_factory.mktemp("logs") / "serve.log", SAGEMAKER_MAX_PAYLOAD_IN_MB="6",
                    SEQ2SEQ_BODY_TIMEOUT=str(BODY_TIMEOUT_S), SEQ2SEQ_WORKER_THREADS="32")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def json_body(size_mb: int) -> bytes:
    prefix, suffix = b'{"instances": [{"data": "', b'"}]}'
    return prefix + b"x" * (size_mb * MB - len(prefix) - len(suffix)) + suffix


def post_urllib(url: str, body: bytes):
    request = urllib.request.Request(url + "/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post_requests(url: str, body):
    response = requests.post(url + "/invocations", data=body, headers={"Content-Type": "application/json"},
                             timeout=60)
    return response.status_code, response.content


def post_curl(url: str, body: bytes, tmp_path):
    path = tmp_path / "body.json"
    path.write_bytes(body)
    result = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                             "--data-binary", f"@{path}", url + "/invocations"], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    payload, _, status = result.stdout.rpartition(b"\n")
    return int(status), payload


def assert_413(status, payload, size_text):
    assert status == 413, payload[:300]
    message = json.loads(payload)["error"]
    assert message == f"request body ({size_text}) {LIMIT_TEXT}", message


@pytest.mark.parametrize("size_mb", SIZES_MB)
def test_urllib_and_requests_read_the_413_of_an_over_limit_body(server, size_mb):
    body = json_body(size_mb)
    assert_413(*post_urllib(server.url, body), f"{len(body)} bytes")
    assert_413(*post_requests(server.url, body), f"{len(body)} bytes")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize("size_mb", SIZES_MB)
def test_curl_reads_the_413_of_an_over_limit_body(server, size_mb, tmp_path):
    body = json_body(size_mb)
    assert_413(*post_curl(server.url, body, tmp_path), f"{len(body)} bytes")


def test_chunked_over_limit_body_gets_a_readable_413(server):
    def chunks():
        for _ in range(20):
            yield b"x" * MB
    assert_413(*post_requests(server.url, chunks()), "sent chunked")


def test_a_kept_alive_connection_serves_the_next_request_after_a_drained_413(server):
    with requests.Session() as session:
        response = session.post(server.url + "/invocations", data=json_body(7),
                                headers={"Content-Type": "application/json"}, timeout=60)
        assert response.status_code == 413
        response = session.post(server.url + "/invocations", json={"instances": [{"data": "ein hund"}]}, timeout=30)
        assert response.status_code == 200 and len(response.json()["predictions"]) == 1


def raw_request(port: int, head: bytes, timeout: float = 30) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(head)
    return sock


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_a_body_that_stops_half_way_gets_408_and_frees_the_thread(server):
    started = time.monotonic()
    sock = raw_request(server.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                    b"Content-Length: 1000\r\n\r\n" + b"{" * 500)
    with sock:
        answer = read_response(sock)  # the server answers and closes; we never send the rest
    elapsed = time.monotonic() - started
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(payload)["error"] == (f"request body incomplete: nothing more arrived for {BODY_TIMEOUT_S} s "
                                            "(SEQ2SEQ_BODY_TIMEOUT) before all 1000 announced bytes arrived "
                                            "(TimeoutError)")
    assert BODY_TIMEOUT_S - 0.5 < elapsed < BODY_TIMEOUT_S + 10
    assert requests.get(server.url + "/ping", timeout=2).status_code == 200


def test_a_client_that_disconnects_half_way_leaves_the_server_answering(server):
    for _ in range(40):  # more than the 32 request threads: none may stay stuck
        sock = raw_request(server.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                        b"Content-Length: 100000\r\n\r\n" + b"[" * 1000)
        sock.close()
    response = requests.post(server.url + "/invocations", json={"instances": [{"data": "ein hund"}]}, timeout=10)
    assert response.status_code == 200
    assert "Traceback" not in server.log_text()


def test_malformed_chunked_framing_is_400(server):
    sock = raw_request(server.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
    with sock:
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"malformed chunked request body" in answer or b'"error"' in answer


def test_idle_keep_alive_connections_and_trickling_clients_do_not_block_others(server):
    """64 idle keep-alive connections plus 8 clients sending a small body one byte every 0.5 s."""
    idle = []
    for _ in range(64):
        sock = raw_request(server.port, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        idle.append(sock)  # kept open, never used again
    body = json.dumps({"instances": [{"data": "ein hund"}]}).encode()
    results, stop = [], threading.Event()

    def trickle():
        sock = raw_request(server.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body), timeout=60)
        with sock:
            for byte in body:
                if stop.is_set():
                    return
                sock.sendall(bytes([byte]))
                time.sleep(0.05 if stop.is_set() else 0.1)
            results.append(read_response(sock))

    threads = [threading.Thread(target=trickle) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        for _ in range(3):
            started = time.monotonic()
            assert requests.get(server.url + "/ping", timeout=5).status_code == 200
            response = requests.post(server.url + "/invocations", json={"instances": [{"data": "ein hund"}]},
                                     timeout=10)
            assert response.status_code == 200
            assert time.monotonic() - started < 3.0
        for thread in threads:
            thread.join(60)
        assert len(results) == 8 and all(r.startswith(b"HTTP/1.1 200") for r in results), results[:1]
    finally:
        stop.set()
        for sock in idle:
            sock.close()
