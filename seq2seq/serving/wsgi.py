"""The endpoint's WSGI app, built by a factory from the settings it is given.

`create_server_app(settings)` builds everything from `settings`; importing this module
reads no environment, builds nothing and keeps no state, so apps with different settings live side
by side in one process.

gunicorn (container/gunicorn.conf.py) loads `seq2seq.serving.wsgi:app_from_environment()` in each
worker after the fork, once its `post_fork` hook has put the worker's device into
SEQ2SEQ_WORKER_DEVICE. The model is loaded by the worker's decoder thread; the gunicorn master never
imports this module, and so never touches MXNet or CUDA.
"""
import functools
import logging
import os
from typing import Mapping

from flask import Flask

from seq2seq.errors import UserError
from seq2seq.serving.app import create_app
from seq2seq.serving.batching import BatchingProvider
from seq2seq.serving.settings import ServingSettings

logger = logging.getLogger(__name__)
WARM_UP_SOURCE = (4, 5, 6)


def load_translator(model_dir: str, context: str):
    """Load the Translator from `model_dir` on `context` ("cpu" or "gpu:<i>") and decode once to warm up."""
    if not os.path.isdir(model_dir):
        raise UserError(f"model directory {model_dir} does not exist (set SAGEMAKER_BASE_DIR or unpack "
                        f"model.tar.gz there)")
    import mxnet as mx  # imported here, in the worker, never in the gunicorn master
    from seq2seq.inference.translator import Translator

    device = mx.cpu() if context == "cpu" else mx.gpu(int(context.split(":", 1)[1]))
    logger.info("loading the model from %s on %s (pid %d)", model_dir, device, os.getpid())
    translator = Translator.load(model_dir, context=device)
    vocab_size = len(translator.source_vocab)
    warm_up = [[i for i in WARM_UP_SOURCE if i < vocab_size]]
    translator.translate_ids(warm_up, translator.default_options)
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
