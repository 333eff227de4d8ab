"""WSGI entry point: `seq2seq.serving.wsgi:app`.

Importing this module loads nothing: the model is loaded by the worker's decoder thread, started
by gunicorn's `post_fork` hook (`start_worker`) with the worker's device, or on the first request
when the app runs without that hook. The gunicorn master therefore never touches MXNet or CUDA.
"""
import logging
import os

from seq2seq.errors import UserError
from seq2seq.serving.app import create_app
from seq2seq.serving.batching import BatchingProvider
from seq2seq.serving.settings import ServingSettings

logger = logging.getLogger(__name__)
WARM_UP_SOURCE = [4, 5, 6]

settings = ServingSettings.from_env()
_device = {"context": "gpu:0" if settings.num_gpus > 0 else "cpu"}


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


provider = BatchingProvider(lambda: load_translator(settings.model_dir, _device["context"]),
                            batch_wait_ms=settings.batch_wait_ms,
                            max_batch_sentences=settings.max_batch_sentences)
app = create_app(provider, settings)


def start_worker(context: str) -> None:
    """Called in a freshly forked worker: remember its device and start loading the model there."""
    _device["context"] = context
    provider.start()
