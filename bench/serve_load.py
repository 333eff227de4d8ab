"""A bounded closed-loop load generator for the endpoint (used by bench.bench_serve).

`clients` threads each keep one single-sentence JSON request in flight until `duration_s` has
passed or `max_requests` have been sent in total; latency is measured per request, client side.
"""
import itertools
import threading
import time

import numpy as np
import requests


def run_load(url: str, sentences: list, clients: int, duration_s: float, beam_size: int,
             max_requests: int) -> dict:
    """Requests/s, p50/p99 latency (ms), errors and mean output tokens of one measurement."""
    counter = itertools.count()
    lock = threading.Lock()
    latencies, output_tokens, errors = [], [], []
    deadline = time.monotonic() + duration_s

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                with lock:
                    index = next(counter)
                if index >= max_requests:
                    return
                _one_request(session, url, sentences[index % len(sentences)], beam_size, latencies,
                             output_tokens, errors, lock)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration_s + 120)
    elapsed = time.monotonic() - start
    done = len(latencies)
    millis = np.array(latencies) * 1000.0 if latencies else np.array([float("nan")])
    return {
        "clients": clients, "requests": done + len(errors), "errors": len(errors), "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(done / elapsed, 3) if elapsed > 0 else 0.0,
        "p50_ms": round(float(np.percentile(millis, 50)), 1), "p99_ms": round(float(np.percentile(millis, 99)), 1),
        "mean_ms": round(float(np.mean(millis)), 1),
        "mean_output_tokens": round(float(np.mean(output_tokens)), 2) if output_tokens else 0.0,
        "error_examples": errors[:3],
    }


def _one_request(session, url, sentence, beam_size, latencies, output_tokens, errors, lock) -> None:
    body = {"instances": [{"data": sentence}], "configuration": {"beam_size": beam_size}}
    start = time.perf_counter()
    try:
        response = session.post(url + "/invocations", json=body, timeout=120)
        elapsed = time.perf_counter() - start
        ok = response.status_code == 200
        detail = None if ok else f"HTTP {response.status_code}: {response.text[:200]}"
        tokens = len(response.json()["predictions"][0]["target"].split()) if ok else 0
    except (requests.RequestException, ValueError, KeyError, IndexError) as error:
        ok, detail, elapsed, tokens = False, f"{type(error).__name__}: {error}", 0.0, 0
    with lock:
        if ok:
            latencies.append(elapsed)
            output_tokens.append(tokens)
        else:
            errors.append(detail)
