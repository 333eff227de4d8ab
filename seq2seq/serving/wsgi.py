"""The endpoint's WSGI app, built by a factory from the settings it is given.

`create_server_app(settings)` builds everything from `settings`; importing this module
reads no environment, builds nothing and keeps no state, so apps with different settings live side
by side in one process.

gunicorn (container/gunicorn.conf.py) loads `seq2seq.serving.wsgi:app_from_environment()` in each
worker after the fork, once its `post_fork` hook has put the worker's device into
SEQ2SEQ_WORKER_DEVICE. The model is loaded by the worker's decoder thread; the gunicorn master never
imports this module, and so never touches MXNet or CUDA. The worker's `post_worker_init` hook then
calls `wait_for_model`, so that a worker accepts no connection before its model is loaded: once one
worker's /ping has said 200, every request lands on a worker that can translate, also while another
worker starts or restarts (the listening socket is shared; only workers in their accept loop take
connections).
"""
import functools
import logging
import os
import time
from typing import Callable, Mapping

from flask import Flask

from seq2seq import failure_text
from seq2seq.errors import Seq2SeqError, UserError
from seq2seq.serving.app import create_app
from seq2seq.serving.batching import BatchingProvider
from seq2seq.serving.settings import ServingSettings

logger = logging.getLogger(__name__)
WARM_UP_SOURCE = (4, 5, 6)
MODEL_LOAD_TIMEOUT_S = 1800.0   # a worker whose model is not loaded by then exits (gunicorn starts another)
HEARTBEAT_INTERVAL_S = 1.0


def load_translator(model_dir: str, context: str):
    """Load the Translator from `model_dir` on `context` ("cpu" or "gpu:<i>") and decode once to warm up."""
    if not os.path.isdir(model_dir):
        raise UserError(f"model directory {model_dir} does not exist (set SAGEMAKER_BASE_DIR or unpack "
                        f"model.tar.gz there)")
    import mxnet as mx  # imported here, in the worker, never in the gunicorn master
    from seq2seq.inference.translator import Translator

    device = mx.cpu() if context == "cpu" else mx.gpu(int(context.split(":", 1)[1]))
    if device.device_type == "gpu":
        from seq2seq.training.devices import check_gpu_visible
        check_gpu_visible(device.device_id, f"the worker's device {context} (SEQ2SEQ_NUM_GPUS)",
                          "SEQ2SEQ_NUM_GPUS=0 (serve on the CPU)")
    logger.info("loading the model from %s on %s (pid %d)", model_dir, device, os.getpid())
    try:
        translator = Translator.load(model_dir, context=device)
        vocab_size = len(translator.source_vocab)
        warm_up = [[i for i in WARM_UP_SOURCE if i < vocab_size]]
        translator.translate_ids(warm_up, translator.default_options)
    except Seq2SeqError:
        raise
    except Exception as error:  # MXNet's C++ trace goes to the log; /ping and requests get one line
        logger.exception("loading the model from %s on %s failed", model_dir, device)
        if failure_text.is_out_of_memory(error):
            raise Seq2SeqError(failure_text.out_of_memory_advice(
                error, str(device), "loading the model", "serve a smaller model, run fewer workers per GPU "
                "(SAGEMAKER_MODEL_SERVER_WORKERS) or use an instance with more GPU memory")) from None
        raise Seq2SeqError(f"cannot load the model from {model_dir} on {device}: {type(error).__name__}: "
                           f"{failure_text.one_line(error)}; the model directory must hold params.best, config.json "
                           f"and the vocabularies of one training job (unpack its complete model.tar.gz)") from None
    return translator


def create_server_app(settings: ServingSettings) -> Flask:
    """The endpoint for `settings`: seq2seq.serving.app.create_app with a BatchingProvider that loads the
    model from settings.model_dir on settings.device in its own decoder thread, started by the first
    request (or at once by `app_from_environment`)."""
    provider = BatchingProvider(functools.partial(load_translator, settings.model_dir, settings.device),
                                batch_wait_ms=settings.batch_wait_ms,
                                max_batch_sentences=settings.max_batch_sentences)
    return create_app(provider, settings)


def app_from_environment(environ: Mapping[str, str] = None) -> Flask:
    """gunicorn's application factory: the app for `ServingSettings.from_env(environ)`, its model load
    already started, so that /ping turns 200 without waiting for a first request."""
    app = create_server_app(ServingSettings.from_env(environ))
    app.extensions["seq2seq_provider"].start()
    return app


def wait_for_model(app: Flask, heartbeat: Callable[[], None] = lambda: None,
                   timeout_s: float = MODEL_LOAD_TIMEOUT_S) -> str:
    """Block until the app's provider has finished loading its model; call `heartbeat` about every second
    meanwhile (gunicorn's `worker.notify`, so that the master does not take a long load for a hung worker).

    Returns "ready", "failed" (the load raised: the worker then answers /ping and every request with 503 and
    the load error in one line, so it is never reported ready) or "timeout" (still loading after `timeout_s`
    seconds).
    """
    provider = app.extensions["seq2seq_provider"]
    start = getattr(provider, "start", None)
    if start is not None:
        start()
    deadline = time.monotonic() + timeout_s
    while True:
        waited_from = time.monotonic()
        if provider.wait_until_ready(HEARTBEAT_INTERVAL_S):
            return "ready"
        # wait_until_ready returns before its timeout only when the load has ended without a model
        if time.monotonic() - waited_from < HEARTBEAT_INTERVAL_S * 0.9:
            return "failed"
        if time.monotonic() >= deadline:
            return "timeout"
        heartbeat()
