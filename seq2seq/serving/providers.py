"""Translator providers: what the Flask app asks for a model and for decoding.

A provider has:
    is_ready() -> bool                    True once the model is loaded (drives /ping)
    translator()                          the loaded Translator (vocabularies, default options);
                                          raises ModelNotReadyError (503) while loading or after a failed load
    submit(sources, options)              decode `sources` (lists of source ids) with DecodeOptions;
                                          returns an object with `result(timeout)` (one Translation per
                                          source, in order; TimeoutError when late) and `cancel()`

`DirectProvider` wraps an already loaded translator and decodes in the calling thread (tests, tools).
`seq2seq.serving.batching.BatchingProvider` loads lazily in its own thread and shares decode
batches between concurrent requests (the server).
"""
import threading
from concurrent.futures import Future
from typing import List


class DirectProvider:
    """A provider over a loaded translator; decodes synchronously, one call at a time."""

    def __init__(self, translator):
        self._translator = translator
        self._lock = threading.Lock()

    def is_ready(self) -> bool:
        return True

    def translator(self):
        return self._translator

    def submit(self, sources: List[List[int]], options) -> Future:
        future = Future()
        future.set_running_or_notify_cancel()
        try:
            with self._lock:
                future.set_result(self._translator.translate_ids(sources, options))
        except Exception as error:  # handed to the waiting request, which maps it to a status
            future.set_exception(error)
        return future
