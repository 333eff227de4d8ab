"""seq2seq.serving.wsgi.wait_for_model: what gunicorn's post_worker_init waits on before a worker accepts."""
import runpy
import time
from pathlib import Path
from types import SimpleNamespace

from flask import Flask

from seq2seq.serving import wsgi
from seq2seq.serving.batching import BatchingProvider

CONF = Path(__file__).resolve().parents[2] / "container" / "gunicorn.conf.py"


def app_loading_with(load) -> Flask:
    app = Flask("test")
    app.extensions["seq2seq_provider"] = BatchingProvider(load)
    return app


def test_it_returns_once_the_model_is_loaded_and_beats_meanwhile(monkeypatch):
    monkeypatch.setattr(wsgi, "HEARTBEAT_INTERVAL_S", 0.05)
    beats = []
    app = app_loading_with(lambda: time.sleep(0.4) or "translator")
    started = time.monotonic()
    assert wsgi.wait_for_model(app, heartbeat=lambda: beats.append(time.monotonic())) == "ready"
    assert time.monotonic() - started >= 0.4
    assert app.extensions["seq2seq_provider"].translator() == "translator"
    assert len(beats) >= 3


def test_a_failed_load_returns_at_once(monkeypatch):
    monkeypatch.setattr(wsgi, "HEARTBEAT_INTERVAL_S", 5.0)

    def broken():
        raise ValueError("corrupt parameters")

    started = time.monotonic()
    assert wsgi.wait_for_model(app_loading_with(broken)) == "failed"
    assert time.monotonic() - started < 4.0


def test_a_load_that_does_not_finish_times_out(monkeypatch):
    monkeypatch.setattr(wsgi, "HEARTBEAT_INTERVAL_S", 0.05)
    assert wsgi.wait_for_model(app_loading_with(lambda: time.sleep(3)), timeout_s=0.3) == "timeout"


def test_the_gunicorn_worker_waits_for_its_model_before_it_accepts(monkeypatch):
    """post_worker_init runs after the app is built and before gunicorn's accept loop (Worker.init_process)."""
    monkeypatch.setattr(wsgi, "HEARTBEAT_INTERVAL_S", 0.05)
    conf = runpy.run_path(str(CONF))
    lines, beats = [], []
    app = app_loading_with(lambda: time.sleep(0.3) or "translator")
    worker = SimpleNamespace(pid=7, wsgi=app, notify=lambda: beats.append(1),
                             log=SimpleNamespace(info=lambda *a: lines.append(a[0] % a[1:]),
                                                 error=lambda *a: lines.append(a[0] % a[1:])))
    conf["post_worker_init"](worker)
    assert app.extensions["seq2seq_provider"].is_ready() and beats
    assert lines and lines[-1].startswith("worker 7 accepts requests: model loaded in")
