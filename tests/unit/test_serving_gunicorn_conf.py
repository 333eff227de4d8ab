"""container/gunicorn.conf.py: settings from the environment, worker slots and their devices."""
import logging
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

from seq2seq.serving import wsgi

CONF = Path(__file__).resolve().parents[2] / "container" / "gunicorn.conf.py"


@pytest.fixture
def conf(monkeypatch):
    for name, value in {"SEQ2SEQ_NUM_GPUS": "2", "SAGEMAKER_BIND_TO_PORT": "9100", "OMP_NUM_THREADS": "2",
                        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "77", "SEQ2SEQ_GRACEFUL_TIMEOUT": "11"}.items():
        monkeypatch.setenv(name, value)
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


def test_workers_take_the_lowest_free_slot_and_map_to_gpu_slot_mod_n(conf, monkeypatch):
    started = []
    monkeypatch.setattr(wsgi, "start_worker", started.append)
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
    for worker in (workers[101], replacement, workers[103]):
        conf["post_fork"](fake_server(workers), worker)
    assert started == ["gpu:0", "gpu:1", "gpu:0"]
