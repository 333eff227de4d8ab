"""container/gunicorn.conf.py: settings from the environment, worker slots and their devices, the app factory."""
import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.util import import_app

from seq2seq.serving.settings import WORKER_DEVICE_VARIABLE

CONF = Path(__file__).resolve().parents[2] / "container" / "gunicorn.conf.py"


@pytest.fixture
def conf(monkeypatch):
    for name, value in {"SEQ2SEQ_NUM_GPUS": "2", "SAGEMAKER_BIND_TO_PORT": "9100", "OMP_NUM_THREADS": "2",
                        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "77", "SEQ2SEQ_GRACEFUL_TIMEOUT": "11",
                        WORKER_DEVICE_VARIABLE: "cpu"}.items():
        monkeypatch.setenv(name, value)  # also restores what post_fork writes into os.environ
    project_log = logging.getLogger("seq2seq")
    saved = (list(project_log.handlers), project_log.level, project_log.propagate)
    yield runpy.run_path(str(CONF))
    project_log.handlers, project_log.propagate = saved[0], saved[2]
    project_log.setLevel(saved[1])


def fake_server(workers):
    error_log = logging.getLogger("test-gunicorn-error")
    return SimpleNamespace(WORKERS={pid: w for pid, w in workers.items()},
                           log=SimpleNamespace(error_log=error_log, info=lambda *a: None))


def test_gunicorn_settings_come_from_the_environment(conf):
    assert conf["bind"] == "0.0.0.0:9100"
    assert (conf["workers"], conf["worker_class"]) == (2, "gthread")
    assert (conf["timeout"], conf["graceful_timeout"]) == (77, 11)
    assert "preload_app" not in conf  # the model must never be loaded in the master
    assert conf["wsgi_app"] == "seq2seq.serving.wsgi:app_from_environment()"  # a factory, called per worker


def test_workers_take_the_lowest_free_slot_and_map_to_gpu_slot_mod_n(conf):
    workers = {}
    for pid in (101, 102, 103):
        worker = SimpleNamespace(pid=pid)
        conf["pre_fork"](fake_server(workers), worker)
        workers[pid] = worker
    assert [w.seq2seq_slot for w in workers.values()] == [0, 1, 2]
    del workers[102]  # worker in slot 1 died; its replacement takes slot 1 again
    replacement = SimpleNamespace(pid=104)
    conf["pre_fork"](fake_server(workers), replacement)
    assert replacement.seq2seq_slot == 1
    devices = []
    for worker in (workers[101], replacement, workers[103]):
        conf["post_fork"](fake_server(workers), worker)
        devices.append(os.environ[WORKER_DEVICE_VARIABLE])
    assert devices == ["gpu:0", "gpu:1", "gpu:0"]


def test_each_worker_builds_its_app_with_the_factory_on_its_device(conf, monkeypatch, tmp_path):
    """What gunicorn does in a worker after post_fork: load `wsgi_app` with its own loader."""
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))  # no model: the load fails fast, before MXNet
    conf["post_fork"](fake_server({}), SimpleNamespace(pid=105, seq2seq_slot=3))
    app = import_app(conf["wsgi_app"])
    settings = app.extensions["seq2seq_settings"]
    assert (settings.device, settings.port, settings.timeout_s) == ("gpu:1", 9100, 77)
    provider = app.extensions["seq2seq_provider"]
    assert provider.started  # loading began in the factory, not at the first request
    provider.wait_until_ready(5)
    response = app.test_client().get("/ping")
    assert response.status_code == 503
    assert f"model directory {tmp_path / 'model'} does not exist" in response.get_json()["error"]


def test_reading_the_config_imports_neither_mxnet_nor_flask():
    """The gunicorn master reads this config; it must stay free of MXNet (CUDA does not survive fork)."""
    probe = (f"import runpy, sys; runpy.run_path({str(CONF)!r}); "
             "print(sorted(m for m in ('mxnet', 'flask', 'seq2seq.serving.wsgi') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, SEQ2SEQ_NUM_GPUS="0"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
