"""Dynamic batching inside one server worker.

One decoder thread owns the model: it loads it (lazily, after the worker has forked) and then runs
every decode, so MXNet is only ever driven from that thread. This matters for speed as well as safety: a
model loaded (and first run) in one thread decodes 3-4x slower from another thread on the CPU (single
sentences 59 ms against 16 ms, measured here). Request threads `submit` their
sentences, queued as chunks of at most `max_batch_sentences`, and wait for them. When the decoder
picks up work it waits up to `batch_wait_ms` for other chunks with the same DecodeOptions, then
decodes whole chunks (at most `max_batch_sentences` sentences together) in one `translate_ids`
call and hands each chunk its own slice back. A timed-out request cancels its chunks that have not
started. Results are the same as decoding each request alone, because the Translator's batched
beam search masks padding per sentence.
"""
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Deque, List

from seq2seq.errors import Seq2SeqError
from seq2seq.serving.http_errors import ModelNotReadyError

logger = logging.getLogger(__name__)
RECENT_BATCHES = 1000


@dataclass
class _Job:
    """One request's sentences waiting to be decoded."""

    sources: List[List[int]]
    options: Any
    future: Future


class ChunkedRequest:
    """The Futures of one request's chunks, read as one result (the `submit` return value)."""

    def __init__(self, futures: List[Future]):
        self._futures = futures

    def result(self, timeout: float = None) -> list:
        """All chunks' translations in order; TimeoutError when not done within `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        translations = []
        for future in self._futures:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            translations.extend(future.result(remaining))
        return translations

    def cancel(self) -> None:
        for future in self._futures:
            future.cancel()


class BatchingProvider:
    """A translator provider (see seq2seq.serving.providers) that shares decode batches across requests.

    Args:
        load_translator: called once, in the decoder thread, to load the model.
        batch_wait_ms: longest wait (milliseconds) for more requests before decoding.
        max_batch_sentences: most sentences per shared decode call.
    """

    def __init__(self, load_translator: Callable[[], Any], batch_wait_ms: float = 5.0,
                 max_batch_sentences: int = 64):
        self._load_translator = load_translator
        self._wait_s = max(0.0, batch_wait_ms) / 1000.0
        self._max_sentences = max(1, max_batch_sentences)
        self._cond = threading.Condition()
        self._pending: Deque[_Job] = deque()
        self._translator = None
        self._load_error = None
        self._thread = None
        self._start_lock = threading.Lock()
        self.recent_batch_sizes: Deque[int] = deque(maxlen=RECENT_BATCHES)

    def start(self) -> None:
        """Start the decoder thread (which loads the model). Calling it again does nothing."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="seq2seq-decoder", daemon=True)
                self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def is_ready(self) -> bool:
        return self._translator is not None

    def wait_until_ready(self, timeout_s: float) -> bool:
        """Block up to `timeout_s` seconds for the load to finish; True when the model is ready."""
        deadline = time.monotonic() + timeout_s
        while self._translator is None and self._load_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._translator is not None

    def translator(self):
        """The loaded translator; ModelNotReadyError (503) while loading or after a failed load."""
        if self._translator is not None:
            return self._translator
        if self._load_error is not None:
            raise ModelNotReadyError(f"the model failed to load: {self._load_error}")
        raise ModelNotReadyError("the model is still loading")

    def submit(self, sources: List[List[int]], options) -> "ChunkedRequest":
        """Queue `sources` for decoding, in chunks of at most `max_batch_sentences`.

        The returned request's `result(timeout)` gives one Translation per source, in order;
        `cancel()` drops the chunks not yet decoding, so a timed-out request stops using the model.
        """
        self.translator()
        chunks = [list(sources[start:start + self._max_sentences])
                  for start in range(0, len(sources), self._max_sentences)]
        jobs = [_Job(chunk, options, Future()) for chunk in chunks]
        with self._cond:
            self._pending.extend(jobs)
            self._cond.notify()
        return ChunkedRequest([job.future for job in jobs])

    def _run(self) -> None:
        try:
            translator = self._load_translator()
        except BaseException as error:  # reported by /ping and every request; the thread ends
            self._load_error = error.message if isinstance(error, Seq2SeqError) else f"{type(error).__name__}: {error}"
            logger.exception("loading the model failed")
            return
        self._translator = translator
        logger.info("model loaded; decoding with batch wait %.1f ms, at most %d sentences per batch",
                    self._wait_s * 1000, self._max_sentences)
        while True:
            jobs = self._next_batch()
            try:
                self._decode(jobs)
            except BaseException as error:  # never let the decoder thread die with requests waiting
                logger.exception("decoder loop failed")
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)

    def _next_batch(self) -> List[_Job]:
        """Wait for work, then for up to the batch wait; take the jobs that share the first job's options."""
        with self._cond:
            while not self._pending:
                self._cond.wait()
            options = self._pending[0].options
            deadline = time.monotonic() + self._wait_s
            while self._pending_sentences(options) < self._max_sentences:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take(options)

    def _pending_sentences(self, options) -> int:
        return sum(len(job.sources) for job in self._pending if job.options == options)

    def _take(self, options) -> List[_Job]:
        """Remove and return jobs with `options` in arrival order, up to the sentence limit."""
        taken, kept, total, full = [], deque(), 0, False
        for job in self._pending:
            fits = not taken or total + len(job.sources) <= self._max_sentences
            if not full and job.options == options and fits:
                taken.append(job)
                total += len(job.sources)
            else:
                full = full or job.options == options
                kept.append(job)
        self._pending = kept
        return taken

    def _decode(self, jobs: List[_Job]) -> None:
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        sources = [source for job in live for source in job.sources]
        self.recent_batch_sizes.append(len(sources))
        try:
            translations = self._translate(sources, live[0].options)
        except Exception as error:
            if len(live) == 1:
                live[0].future.set_exception(error)
                return
            logger.warning("a shared batch of %d requests failed (%s); decoding them one by one", len(live), error)
            self._decode_each(live)
            return
        start = 0
        for job in live:
            job.future.set_result(translations[start:start + len(job.sources)])
            start += len(job.sources)

    def _decode_each(self, jobs: List[_Job]) -> None:
        """Decode jobs separately so that one bad request fails alone."""
        for job in jobs:
            try:
                job.future.set_result(self._translate(job.sources, job.options))
            except Exception as error:
                job.future.set_exception(error)

    def _translate(self, sources: List[List[int]], options) -> list:
        translations = self._translator.translate_ids(sources, options)
        if len(translations) != len(sources):
            raise RuntimeError(f"translator returned {len(translations)} translations for {len(sources)} sources")
        return list(translations)
