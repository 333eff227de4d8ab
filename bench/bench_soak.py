"""Soak benchmark: the endpoint under a long mixed load, and the worker's memory over it.

`container/serve` (bench.serve_process) with one worker serves a fixed random model (embeddings 32,
LSTM 64, vocabularies of 2,000 generated words, seed 0; or `--model DIR`). `--clients` threads (16)
each keep one request in flight for `--duration-s` (300) after `--warmup-s` (30) of the same load:

* good requests, single sentence: 1/2 JSON, 1/4 JSON lines, 1/4 RecordIO-protobuf; one JSON request in
  ten asks for the attention matrix;
* one request in fifty is malformed, in turn: invalid JSON (400), an unknown Content-Type (415), a
  beam_size over the limit (400), a corrupt RecordIO body (400). Each must get exactly that status.

Reported: requests/s (good, measured window), p50/p99 latency of the good requests, errors among good
requests (target 0), bad requests answered with another status (target 0), worker RSS after the warm-up
and at the end (target: growth < 10%), the load average before and after.

Usage: python -m bench.bench_soak [--clients 16] [--duration-s 300] [--warmup-s 30] [--quick] [--model DIR]
`--quick` = 4 clients, 20 s, 5 s warm-up (a smoke test; its figures are not the soak's).
Writes bench/results/soak.json (bench/results/soak_quick.json with --quick) and prints a table.
"""
import argparse
import json
import os
import platform
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.serve_process import ServeProcess  # noqa: E402
from bench.results_io import relative, write_json_atomically

RESULTS_DIR = REPO_ROOT / "bench" / "results"
WORK_DIR = REPO_ROOT / "build" / "bench" / "soak"
MODEL_SIZE = dict(num_embed_source=32, num_embed_target=32, rnn_num_hidden=64, rnn_attention_num_hidden=64,
                  max_seq_len_source=30, max_seq_len_target=30)
VOCAB_WORDS = 2000
JSON, JSONLINES, RECORDIO = "application/json", "application/jsonlines", "application/x-recordio-protobuf"
MALFORMED_EVERY = 50
ATTENTION_EVERY = 10  # of the JSON requests
BAD_KINDS = ("invalid-json", "unknown-content-type", "beam-too-large", "corrupt-recordio")
BAD_STATUS = {"invalid-json": 400, "unknown-content-type": 415, "beam-too-large": 400, "corrupt-recordio": 400}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration-s", type=float, default=300.0, help="measured time after the warm-up")
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="4 clients, 20 s, 5 s warm-up")
    parser.add_argument("--model", type=Path, help="a model directory (default: the random soak model)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")),
                        help="OMP_NUM_THREADS of the server")
    parser.add_argument("--output", type=Path, help="result JSON (default bench/results/soak[_quick].json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.duration_s, args.warmup_s = 4, 20.0, 5.0
    return args


def soak_model(work_dir: Path) -> tuple:
    """(model dir, sentences): the random soak model, rebuilt only when its settings change."""
    from seq2seq.data.vocab import build_vocabulary
    from tests.untrained_model import save_untrained_model

    rng = random.Random(0)
    words = [f"w{i}" for i in range(VOCAB_WORDS)]
    sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 20))) for _ in range(500)]
    model_dir = work_dir / "model"
    stamp = model_dir / "bench_stamp.json"
    settings = dict(MODEL_SIZE, vocab_words=VOCAB_WORDS)
    if not (stamp.exists() and json.loads(stamp.read_text()) == settings):
        vocab = build_vocabulary([words])
        save_untrained_model(str(model_dir), vocab, vocab, seed=0, **MODEL_SIZE)
        stamp.write_text(json.dumps(settings))
    return model_dir, sentences


def good_request(index: int, sentence: str, source_vocab) -> tuple:
    """(kind, body, headers) of request `index` of the good mix."""
    slot = index % 4
    if slot in (0, 1):
        document = {"instances": [{"data": sentence}]}
        attention = (index // 2) % ATTENTION_EVERY == 0
        if attention:
            document["configuration"] = {"attention_matrix": "true"}
        return ("json+attention" if attention else "json"), json.dumps(document).encode(), {"Content-Type": JSON}
    if slot == 2:
        return "jsonlines", (json.dumps({"source": sentence}) + "\n").encode(), {"Content-Type": JSONLINES}
    from seq2seq.data import recordio_codec
    ids = source_vocab.encode(sentence.split())
    return "recordio", recordio_codec.pairs_to_bytes([(ids, [])]), {"Content-Type": RECORDIO, "Accept": RECORDIO}


def bad_request(kind: str) -> tuple:
    if kind == "invalid-json":
        return b'{"instances": [{"data": "w1 w2"', {"Content-Type": JSON}
    if kind == "unknown-content-type":
        return b"w1,w2", {"Content-Type": "text/csv"}
    if kind == "beam-too-large":
        return (json.dumps({"instances": [{"data": "w1 w2"}], "configuration": {"beam_size": 1000}}).encode(),
                {"Content-Type": JSON})
    return b"\x00\x01\x02\x03" * 8, {"Content-Type": RECORDIO}


def check_good(kind: str, response: requests.Response) -> str:
    """None when the answer is right, else what is wrong."""
    if response.status_code != 200:
        return f"{kind}: HTTP {response.status_code}: {response.text[:200]}"
    if kind in ("json", "json+attention"):
        predictions = response.json()["predictions"]
        if len(predictions) != 1 or not isinstance(predictions[0].get("target"), str):
            return f"{kind}: unexpected body {response.text[:200]}"
        if kind == "json+attention" and "matrix" not in predictions[0]:
            return f"{kind}: no attention matrix"
    elif kind == "jsonlines":
        if len(response.text.splitlines()) != 1:
            return f"{kind}: unexpected body {response.text[:200]}"
    elif not response.content:
        return f"{kind}: empty body"
    return None


class Load:
    """Closed-loop clients; records the outcome of every request with its completion time."""

    def __init__(self, url: str, sentences: list, source_vocab, clients: int):
        self.url = url + "/invocations"
        self.sentences = sentences
        self.source_vocab = source_vocab
        self.clients = clients
        self.lock = threading.Lock()
        self.counter = 0
        self.records = []  # (finished monotonic, kind, good?, latency s, problem or None)
        self.stop = threading.Event()

    def _next(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def client(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                index = self._next()
                if index % MALFORMED_EVERY == 0:
                    kind = BAD_KINDS[(index // MALFORMED_EVERY) % len(BAD_KINDS)]
                    body, headers = bad_request(kind)
                    good = False
                else:
                    kind, body, headers = good_request(index, self.sentences[index % len(self.sentences)],
                                                       self.source_vocab)
                    good = True
                started = time.perf_counter()
                try:
                    response = session.post(self.url, data=body, headers=headers, timeout=120)
                    latency = time.perf_counter() - started
                    if good:
                        problem = check_good(kind, response)
                    else:
                        ok = response.status_code == BAD_STATUS[kind] and "error" in response.json()
                        problem = None if ok else f"{kind}: HTTP {response.status_code}: {response.text[:200]}"
                except (requests.RequestException, ValueError, KeyError) as error:
                    latency, problem = time.perf_counter() - started, f"{kind}: {type(error).__name__}: {error}"
                with self.lock:
                    self.records.append((time.monotonic(), kind, good, latency, problem))

    def start(self) -> list:
        threads = [threading.Thread(target=self.client, daemon=True) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        return threads


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return float("nan")


def summarize(records: list, window_start: float, window_end: float) -> dict:
    measured = [r for r in records if window_start <= r[0] <= window_end]
    good = [r for r in measured if r[2]]
    bad = [r for r in measured if not r[2]]
    good_ok = [r for r in good if r[4] is None]
    millis = np.array([r[3] for r in good_ok]) * 1000.0 if good_ok else np.array([float("nan")])
    elapsed = window_end - window_start
    by_kind = {}
    for record in measured:
        by_kind[record[1]] = by_kind.get(record[1], 0) + 1
    problems = [r[4] for r in measured if r[4] is not None]
    return {
        "measured_s": round(elapsed, 1), "requests": len(measured), "good_requests": len(good),
        "bad_requests": len(bad), "requests_per_s": round(len(good_ok) / elapsed, 2) if elapsed > 0 else 0.0,
        "p50_ms": round(float(np.percentile(millis, 50)), 1), "p99_ms": round(float(np.percentile(millis, 99)), 1),
        "errors_on_good": sum(1 for r in good if r[4] is not None),
        "bad_with_wrong_status": sum(1 for r in bad if r[4] is not None),
        "requests_by_kind": dict(sorted(by_kind.items())), "problem_examples": problems[:5],
    }


def print_table(results: dict) -> None:
    s, m = results["summary"], results["memory"]
    print(f"\nSoak: {results['settings']['clients']} clients, {s['measured_s']:g} s measured after "
          f"{results['settings']['warmup_s']:g} s warm-up (load average {results['load_average']['before']} -> "
          f"{results['load_average']['after']})")
    print(f"{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'good':>7} {'errors':>7} {'bad':>5} {'bad!=4xx':>9} "
          f"{'RSS warm MB':>12} {'RSS end MB':>11} {'growth':>7}")
    print(f"{s['requests_per_s']:>8.2f} {s['p50_ms']:>8.0f} {s['p99_ms']:>8.0f} {s['good_requests']:>7} "
          f"{s['errors_on_good']:>7} {s['bad_requests']:>5} {s['bad_with_wrong_status']:>9} "
          f"{m['rss_after_warmup_mb']:>12.1f} {m['rss_end_mb']:>11.1f} {m['growth_percent']:>6.1f}%")
    print("requests by kind: " + ", ".join(f"{k} {v}" for k, v in s["requests_by_kind"].items()))
    verdict = results["targets"]
    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in verdict.items()))
    for problem in s["problem_examples"]:
        print(f"  problem: {problem}")


def main(argv=None) -> int:
    args = parse_args(argv)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    if args.model:
        model_dir = args.model.resolve()
        _, sentences = soak_model(WORK_DIR)
    else:
        model_dir, sentences = soak_model(WORK_DIR)
    from seq2seq.data.vocab import Vocabulary
    source_vocab = Vocabulary.load(str(model_dir / "vocab.src.json"))
    base_dir = WORK_DIR / "opt_ml"
    base_dir.mkdir(exist_ok=True)
    link = base_dir / "model"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(model_dir, target_is_directory=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SEQ2SEQ_NUM_GPUS": "0", "OMP_NUM_THREADS": str(args.threads)}
    print(f"soak: {args.clients} clients, {args.warmup_s:g} s warm-up + {args.duration_s:g} s; model "
          f"{relative(model_dir)}", flush=True)
    with ServeProcess(base_dir, WORK_DIR / "serve.log", **env) as server:
        workers = server.worker_pids() or []
        load = Load(server.url, sentences, source_vocab, args.clients)
        started = time.monotonic()
        threads = load.start()
        time.sleep(args.warmup_s)
        window_start = time.monotonic()
        rss_warm = {pid: rss_mb(pid) for pid in workers}
        samples = []
        while time.monotonic() < window_start + args.duration_s:
            time.sleep(min(10.0, max(0.0, window_start + args.duration_s - time.monotonic())))
            samples.append({"t_s": round(time.monotonic() - started, 1),
                            "rss_mb": sum(rss_mb(pid) for pid in workers)})
        window_end = time.monotonic()
        rss_end = {pid: rss_mb(pid) for pid in workers}
        load.stop.set()
        for thread in threads:
            thread.join(130)
        alive = server.process.poll() is None and (server.worker_pids() or []) == workers
    load_after = [round(x, 2) for x in os.getloadavg()]
    summary = summarize(load.records, window_start, window_end)
    warm, end = sum(rss_warm.values()), sum(rss_end.values())
    growth = (end - warm) / warm * 100.0 if warm else float("nan")
    results = {
        "benchmark": "soak", "quick": args.quick,
        "settings": {"clients": args.clients, "duration_s": args.duration_s, "warmup_s": args.warmup_s,
                     "omp_num_threads": args.threads, "workers": len(workers),
                     "mix": "1/2 JSON (1 in 10 with attention_matrix), 1/4 JSON lines, 1/4 RecordIO-protobuf; "
                            f"1 in {MALFORMED_EVERY} malformed ({', '.join(BAD_KINDS)})",
                     "model": relative(model_dir), "model_size": MODEL_SIZE if not args.model else None},
        "summary": summary,
        "memory": {"rss_after_warmup_mb": round(warm, 1), "rss_end_mb": round(end, 1),
                   "growth_percent": round(growth, 2), "samples": samples},
        "worker_survived": alive,
        "load_average": {"before": load_before, "after": load_after},
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        "targets": {"errors_on_good == 0": summary["errors_on_good"] == 0,
                    "bad answered with their 4xx": summary["bad_with_wrong_status"] == 0,
                    "rss growth < 10%": growth < 10.0, "worker never restarted": alive},
        "server_log": relative(WORK_DIR / "serve.log"),
    }
    output = args.output or RESULTS_DIR / ("soak_quick.json" if args.quick else "soak.json")
    write_json_atomically(output, results)
    print_table(results)
    print(f"\nwrote {relative(output)}")
    return 0 if all(results["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
