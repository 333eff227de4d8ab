"""Benchmark: parallel text -> RecordIO-protobuf, recordio_tools against a per-record Python loop.

    make bench-recordio        (python -m bench.bench_recordio [--pairs N] [--repeats R])

Converts the Multi30k training set and N generated pairs (default 1,000,000) with
  ours:     recordio_tools (vectorized token lookup, vectorized record writer), and
  baseline: bench/recordio_baseline.py, SageMaker's create_vocab_proto.py per-record steps;
both in the same run, each repeat in a fresh subprocess (alternating order), medians reported.
Stages: "vocab" (count tokens, build both vocabularies) and "encode" (text + vocab -> .rec).
Peak RSS of each subprocess (VmHWM) shows whether memory grows with the input.
Writes bench/results/recordio.json and prints a table.
"""

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from seq2seq.atomic_write import write_text
from seq2seq.shared_data import shared_data_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MULTI30K = os.environ.get("MULTI30K_DIR") or str(shared_data_dir("multi30k"))
RESULTS = os.path.join(REPO, "bench", "results", "recordio.json")


# --- worker side: one measured stage in this process --------------------------------------------

def _run_stage(impl, stage, source, target, vocab_dir, output):
    from seq2seq.data.vocab import Vocabulary
    if impl == "ours":
        from recordio_tools import corpus
        if stage == "vocab":
            return corpus.build_vocabularies(source, target, progress_enabled=False), None
        vocabs = [Vocabulary.load(os.path.join(vocab_dir, name)) for name in ("vocab.src.json", "vocab.trg.json")]
        stats = corpus.encode_corpus(source, target, *vocabs, output, progress_enabled=False)
        return None, (stats.pairs_written, stats.pairs_skipped)
    from bench import recordio_baseline
    if stage == "vocab":
        return recordio_baseline.build_vocabularies(source, target), None
    vocabs = [Vocabulary.load(os.path.join(vocab_dir, name)).token_to_id()
              for name in ("vocab.src.json", "vocab.trg.json")]
    return None, recordio_baseline.encode_corpus(source, target, *vocabs, output)


def worker(args) -> None:
    """Time one stage (after imports) and print a JSON line with times, counts and peak RSS."""
    from bench import recordio_baseline  # noqa: F401  (imports are not part of the measurement)
    from recordio_tools import corpus  # noqa: F401
    wall, cpu = time.perf_counter(), time.process_time()
    vocabs, counts = _run_stage(args.impl, args.stage, args.source, args.target, args.vocab_dir, args.output)
    # Encoding runs in worker processes: their CPU counts too (they have exited by now), and the peak RSS
    # is the larger of this process's and the largest worker's.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {"wall_s": time.perf_counter() - wall,
              "cpu_s": time.process_time() - cpu + children.ru_utime + children.ru_stime,
              "max_rss_mb": max(_peak_rss_mb(), children.ru_maxrss / 1024)}
    if counts:
        result["pairs"], result["skipped"] = counts
    if vocabs:
        result["vocab_sizes"] = [len(vocab) for vocab in vocabs]
        result["vocab_digest"] = _vocab_digest(vocabs)
    print(json.dumps(result))


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), which, unlike ru_maxrss, restarts at exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vocab_digest(vocabs) -> str:
    digest = hashlib.sha256()
    for vocab in vocabs:
        mapping = vocab if isinstance(vocab, dict) else vocab.token_to_id()
        digest.update(json.dumps(mapping, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


# --- driver side --------------------------------------------------------------------------------

def _spawn(impl, stage, source, target, vocab_dir, output) -> dict:
    command = [sys.executable, "-m", "bench.bench_recordio", "--worker", "--impl", impl, "--stage", stage,
               "--source", source, "--target", target, "--vocab-dir", vocab_dir, "--output", output]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{impl} {stage} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _file_digest(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _summarize(runs, count_key) -> dict:
    wall = statistics.median(run["wall_s"] for run in runs)
    cpu = statistics.median(run["cpu_s"] for run in runs)
    return {"runs": runs, "median_wall_s": wall, "median_cpu_s": cpu,
            "pairs_per_s_wall": count_key / wall, "pairs_per_s_cpu": count_key / cpu,
            "peak_rss_mb": max(run["max_rss_mb"] for run in runs)}


def bench_dataset(name, source, target, repeats, work) -> dict:
    """Both stages, both implementations, `repeats` times each; checks both give the same bytes."""
    vocab_dir = os.path.join(work, f"{name}-vocab")
    subprocess.run([sys.executable, "-m", "recordio_tools", "vocab", "--source", source, "--target", target,
                    "--output", vocab_dir, "--quiet"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    runs = {(impl, stage): [] for impl in ("ours", "baseline") for stage in ("vocab", "encode")}
    outputs = {impl: os.path.join(work, f"{name}-{impl}.rec") for impl in ("ours", "baseline")}
    for repeat in range(repeats):
        order = ("ours", "baseline") if repeat % 2 == 0 else ("baseline", "ours")
        for stage in ("vocab", "encode"):
            for impl in order:
                run = _spawn(impl, stage, source, target, vocab_dir, outputs[impl])
                runs[(impl, stage)].append(run)
                print(f"  {name} {stage:6s} {impl:8s} repeat {repeat + 1}: {run['wall_s']:.2f} s wall, "
                      f"{run['cpu_s']:.2f} s CPU, {run['max_rss_mb']:.0f} MB", flush=True)
    pairs = runs[("ours", "encode")][0]["pairs"] + runs[("ours", "encode")][0]["skipped"]
    result = {"dataset": name, "line_pairs": pairs,
              "pairs_written": runs[("ours", "encode")][0]["pairs"],
              "pairs_skipped": runs[("ours", "encode")][0]["skipped"],
              "identical_rec_bytes": _file_digest(outputs["ours"]) == _file_digest(outputs["baseline"]),
              "identical_vocab": (runs[("ours", "vocab")][0]["vocab_digest"]
                                  == runs[("baseline", "vocab")][0]["vocab_digest"]),
              "vocab_sizes": runs[("ours", "vocab")][0]["vocab_sizes"],
              "rec_bytes": os.path.getsize(outputs["ours"])}
    for (impl, stage), stage_runs in runs.items():
        result[f"{stage}_{impl}"] = _summarize(stage_runs, pairs)
    result["encode_ours_peak_rss_mb_on_first_29000_pairs"] = _head_rss(source, target, vocab_dir, work, 29_000)
    for stage in ("vocab", "encode"):
        ours, base = result[f"{stage}_ours"], result[f"{stage}_baseline"]
        result[f"{stage}_speedup_wall"] = base["median_wall_s"] / ours["median_wall_s"]
        result[f"{stage}_speedup_cpu"] = base["median_cpu_s"] / ours["median_cpu_s"]
    return result


def _head_rss(source, target, vocab_dir, work, lines) -> float:
    """Peak RSS of our encoder on the first `lines` pairs with the same vocabularies."""
    heads = []
    for path in (source, target):
        head = os.path.join(work, os.path.basename(path) + ".head")
        with open(path, "rb") as full, open(head, "wb") as out:
            for _, line in zip(range(lines), full):
                out.write(line)
        heads.append(head)
    return _spawn("ours", "encode", *heads, vocab_dir, os.path.join(work, "head.rec"))["max_rss_mb"]


def _table(results) -> str:
    header = (f"{'dataset':14s} {'stage':6s} {'impl':8s} {'line pairs':>10s} {'wall s':>8s} {'pairs/s':>11s} "
              f"{'CPU s':>8s} {'pairs/s CPU':>11s} {'peak RSS MB':>11s}")
    lines = [header, "-" * len(header)]
    for result in results:
        for stage in ("encode", "vocab"):
            for impl in ("ours", "baseline"):
                row = result[f"{stage}_{impl}"]
                lines.append(f"{result['dataset']:14s} {stage:6s} {impl:8s} {result['line_pairs']:>10,d} "
                             f"{row['median_wall_s']:>8.2f} {row['pairs_per_s_wall']:>11,.0f} "
                             f"{row['median_cpu_s']:>8.2f} {row['pairs_per_s_cpu']:>11,.0f} "
                             f"{row['peak_rss_mb']:>11.0f}")
            lines.append(f"{'':14s} {stage:6s} speedup  {'':>10s} {result[f'{stage}_speedup_wall']:>7.1f}x "
                         f"{'':>11s} {result[f'{stage}_speedup_cpu']:>7.1f}x")
        lines.append(f"{'':14s} identical .rec bytes: {result['identical_rec_bytes']}, "
                     f"identical vocabularies: {result['identical_vocab']}; encode peak RSS "
                     f"{result['encode_ours']['peak_rss_mb']:.0f} MB on all pairs, "
                     f"{result['encode_ours_peak_rss_mb_on_first_29000_pairs']:.0f} MB on the first 29,000")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000, help="generated pairs (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement (default: %(default)s)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for option in ("--impl", "--stage", "--source", "--target", "--vocab-dir", "--output"):
        parser.add_argument(option, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    work = tempfile.mkdtemp(prefix="bench-recordio-")
    load_before = os.getloadavg()
    try:
        datasets = [("multi30k", os.path.join(MULTI30K, "train.en"), os.path.join(MULTI30K, "train.de"))]
        generated = (os.path.join(work, "generated.src"), os.path.join(work, "generated.trg"))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sys; from bench.synthetic_corpus import write_corpus; "
                        "write_corpus(sys.argv[1], sys.argv[2], int(sys.argv[3]), seed=1)",
                        *generated, str(args.pairs)], cwd=REPO, check=True)
        print(f"generated {args.pairs:,} pairs in {time.perf_counter() - started:.1f} s", flush=True)
        datasets.append((f"generated-{args.pairs // 1000}k", *generated))
        results = [bench_dataset(name, source, target, args.repeats, work) for name, source, target in datasets]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"benchmark": "recordio", "repeats": args.repeats, "python": platform.python_version(),
              "cpu_count": os.cpu_count(), "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "results": results,
              "note": "medians over fresh subprocesses; times exclude interpreter start-up and imports"}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    write_text(RESULTS, json.dumps(report, indent=2))
    print(_table(results))
    print(f"load average before/after: {load_before[0]:.1f} / {report['load_average_after'][0]:.1f} "
          f"on {os.cpu_count()} CPUs; results in {os.path.relpath(RESULTS, REPO)}")


if __name__ == "__main__":
    main()
