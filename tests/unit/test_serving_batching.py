"""Dynamic batching: concurrent requests share decode calls, results match one-by-one decoding."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from seq2seq.inference.translator import DecodeOptions
from seq2seq.serving.batching import BatchingProvider
from seq2seq.serving.http_errors import ModelNotReadyError
from serving_fakes import ReversingTranslator

BEAM = DecodeOptions(beam_size=5)
GREEDY = DecodeOptions(beam_size=1)


def started(translator, **kwargs) -> BatchingProvider:
    provider = BatchingProvider(lambda: translator, **kwargs)
    provider.start()
    assert provider.wait_until_ready(5)
    return provider


def request_sources(index: int):
    """Request `index`: 1 to 3 sentences of different lengths (ids 4..14 are real words)."""
    return [[4 + (index + k) % 10] * (1 + (index + k) % 5) for k in range(1 + index % 3)]


def test_concurrent_requests_share_batches_and_match_sequential_decoding():
    translator = ReversingTranslator(max_seq_len_source=10, delay_s=0.02)
    provider = started(translator, batch_wait_ms=30, max_batch_sentences=64)
    requests = [request_sources(i) for i in range(24)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda sources: provider.submit(sources, BEAM).result(10), requests))
    reference = ReversingTranslator(max_seq_len_source=10)
    expected = [reference.translate_ids(sources, BEAM) for sources in requests]
    assert results == expected
    assert len(translator.calls) < len(requests)
    assert max(provider.recent_batch_sizes) > 3


def test_max_batch_sentences_bounds_every_decode_call_and_large_requests_are_chunked():
    translator = ReversingTranslator(delay_s=0.01)
    provider = started(translator, batch_wait_ms=50, max_batch_sentences=4)
    small = [provider.submit([[4], [5], [6]], BEAM) for _ in range(5)]
    big = provider.submit([[4 + i % 10] * (1 + i % 3) for i in range(9)], BEAM)
    for request in small:
        assert [t.target_ids for t in request.result(5)] == [[4], [5], [6]]
    assert [t.target_ids for t in big.result(5)] == [[4 + i % 10] * (1 + i % 3) for i in range(9)]
    assert max(provider.recent_batch_sizes) <= 4
    assert sum(provider.recent_batch_sizes) == 5 * 3 + 9


def test_a_timed_out_request_cancels_its_chunks_that_have_not_started():
    translator = ReversingTranslator(delay_s=0.2)
    provider = started(translator, batch_wait_ms=0, max_batch_sentences=1)
    request = provider.submit([[4]] * 10, BEAM)
    with pytest.raises(TimeoutError):
        request.result(timeout=0.1)
    request.cancel()
    time.sleep(0.6)
    assert len(translator.calls) <= 2
    assert provider.submit([[5, 6]], BEAM).result(5)[0].target_ids == [6, 5]


def test_requests_with_different_options_are_not_mixed():
    translator = ReversingTranslator()
    provider = started(translator, batch_wait_ms=50)
    beam = [provider.submit([[4, 5]], BEAM) for _ in range(3)]
    greedy = [provider.submit([[4, 5]], GREEDY) for _ in range(3)]
    assert [f.result(5)[0].target_tokens for f in beam] == [["hund", "ein"]] * 3
    assert [f.result(5)[0].target_tokens for f in greedy] == [["ein", "hund"]] * 3
    for count, options in translator.calls:
        assert options in (BEAM, GREEDY)
    assert sum(count for count, options in translator.calls if options == GREEDY) == 3


def test_a_failing_request_fails_alone():
    translator = ReversingTranslator(delay_s=0.01)
    provider = started(translator, batch_wait_ms=50)
    boom = translator.source_vocab.get("boom")
    good = [provider.submit([[4, 5]], BEAM) for _ in range(3)]
    bad = provider.submit([[4], [boom]], BEAM)
    with pytest.raises(RuntimeError, match="exploded"):
        bad.result(5)
    assert [f.result(5)[0].target_tokens for f in good] == [["hund", "ein"]] * 3


def test_empty_request_resolves_without_decoding():
    translator = ReversingTranslator()
    provider = started(translator)
    assert provider.submit([], BEAM).result(1) == []
    assert translator.calls == []


def test_single_request_waits_at_most_the_batch_wait():
    provider = started(ReversingTranslator(), batch_wait_ms=20)
    start = time.monotonic()
    provider.submit([[4]], BEAM).result(5)
    assert time.monotonic() - start < 0.5


def test_submit_before_load_and_after_failed_load_is_503():
    release = threading.Event()
    provider = BatchingProvider(lambda: release.wait(5) and ReversingTranslator())
    with pytest.raises(ModelNotReadyError, match="still loading"):
        provider.submit([[4]], BEAM)
    provider.start()
    provider.start()
    release.set()
    assert provider.wait_until_ready(5)

    def broken():
        raise FileNotFoundError("params.best")

    failed = BatchingProvider(broken)
    failed.start()
    assert not failed.wait_until_ready(5)
    with pytest.raises(ModelNotReadyError, match="failed to load: FileNotFoundError: params.best") as error:
        failed.submit([[4]], BEAM)
    assert error.value.status == 503


def test_model_is_loaded_in_the_decoder_thread():
    threads = []

    def load():
        threads.append(threading.current_thread().name)
        return ReversingTranslator()

    provider = BatchingProvider(load)
    provider.start()
    assert provider.wait_until_ready(5)
    assert threads == ["seq2seq-decoder"]
