"""gunicorn configuration of the inference server (used by `container/serve`).

gthread workers: each worker runs many request threads that feed one decoder thread (dynamic
batching, see seq2seq.serving.batching). The master imports only seq2seq.serving.settings, never
MXNet. Each worker builds its own app after the fork with the factory named by `wsgi_app`; before
that, `post_fork` gives the worker its device (worker slot i on GPU i mod n, or the CPU) through
SEQ2SEQ_WORKER_DEVICE, which the factory reads with the other settings. After it, `post_worker_init`
holds the worker out of its accept loop until its model is loaded: a worker that has not loaded its
model (at start, or after a restart) never takes a request, so nothing gets a 503 once /ping said 200.
"""
import logging
import os
import sys
import time

_HERE = os.path.dirname(os.path.realpath(__file__))
for _root in (os.path.dirname(_HERE), _HERE):  # the repository, or the image's /opt/program
    if os.path.isdir(os.path.join(_root, "seq2seq")):
        if _root not in sys.path:
            sys.path.insert(0, _root)
        break

from seq2seq import runtime_env  # noqa: E402
from seq2seq.serving.settings import WORKER_DEVICE_VARIABLE, ServingSettings, worker_context  # noqa: E402

_settings = ServingSettings.from_env()

wsgi_app = "seq2seq.serving.wsgi:app_from_environment()"  # called in each worker, never in the master
bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "gthread"
threads = _settings.worker_threads
timeout = _settings.timeout_s
graceful_timeout = _settings.graceful_timeout_s
keepalive = 75  # longer than a load balancer's idle timeout, so it never hits a closed connection
errorlog = "-"
loglevel = os.environ.get("SEQ2SEQ_LOG_LEVEL", "info")
accesslog = "-" if _settings.access_log else None
proc_name = "seq2seq-serve"


def pre_fork(server, worker):
    """In the master: give the new worker the lowest slot no live worker holds (it picks the GPU)."""
    taken = {getattr(other, "seq2seq_slot", None) for other in server.WORKERS.values()}
    slot = 0
    while slot in taken:
        slot += 1
    worker.seq2seq_slot = slot


def post_fork(server, worker):
    """In the worker, before it loads the app: route our logs to gunicorn's, choose the device, set the decoding
    process settings (seq2seq.runtime_env: OpenMP threads shared among the workers, MXNet's engine)."""
    project_log = logging.getLogger("seq2seq")
    project_log.handlers = list(server.log.error_log.handlers)
    project_log.setLevel(server.log.error_log.level)
    project_log.propagate = False
    context = worker_context(worker.seq2seq_slot, _settings.num_gpus)
    runtime_env.apply(workers=_settings.workers)     # OpenMP threads and MXNet's engine, before MXNet loads
    os.environ[WORKER_DEVICE_VARIABLE] = context
    server.log.info("worker %d (slot %d) loads the model on %s", worker.pid, worker.seq2seq_slot, context)


def post_worker_init(worker):
    """In the worker, after its app is built and before it accepts any connection: wait for the model."""
    from seq2seq.serving.wsgi import MODEL_LOAD_TIMEOUT_S, wait_for_model

    started = time.monotonic()
    outcome = wait_for_model(worker.wsgi, heartbeat=worker.notify)
    if outcome == "timeout":
        worker.log.error("worker %d: the model did not load within %.0f s; exiting so that another worker starts",
                         worker.pid, MODEL_LOAD_TIMEOUT_S)
        sys.exit(1)
    if outcome == "failed":
        worker.log.error("worker %d: the model failed to load; it answers 503 with the reason", worker.pid)
    else:
        worker.log.info("worker %d accepts requests: model loaded in %.1f s", worker.pid,
                        time.monotonic() - started)
