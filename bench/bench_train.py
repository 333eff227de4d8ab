"""Training-speed benchmark: our training job against Sockeye 1.18 on Multi30k en-de, same run.

Both engines train the reference model (embeddings 256, bi-LSTM encoder 512 in total, LSTM
decoder 512, MLP attention, batches of 64 sentences, Adam, label smoothing 0.1, decoder hidden
dropout 0.2 as in Sockeye's defaults) on the same tokenised, lower-cased Multi30k for a fixed
number of updates. Speed is target tokens/s (target words + ``</s>``, no padding) over the updates
after the warm-up; peak RSS is the training process's maximum resident set size.

Ours runs through the real training job (``python -m seq2seq.train_job`` in a temporary
``SAGEMAKER_BASE_DIR`` tree whose channels link to ``build/multi30k/rec``) and reports its own
token count in its progress lines (``updates/s=...`` and ``target_tokens/s=...``). Sockeye reports
samples/s; see ``bench.sockeye_peer`` for the derivation of its target tokens/s.

Runs are interleaved (Sockeye, then each of our variants, repeated) so that background load hits
every engine alike; the load average before each run is recorded. Results go to
``bench/results/train.json`` and a table is printed.

Usage: ``python -m bench.bench_train [--max-updates 300] [--repeats 3] [--variants ...]``
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import statistics
import sys
import tempfile
from pathlib import Path

from bench import sockeye_peer
from bench.prepare_multi30k import prepare

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "train.json"
BATCH_SIZE = 64

# The reference model in our hyperparameter names (everything as strings, as SageMaker sends them).
REFERENCE_HYPERPARAMETERS = {
    "num_embed_source": "256", "num_embed_target": "256", "rnn_num_hidden": "512",
    "num_layers_encoder": "1", "num_layers_decoder": "1", "rnn_cell_type": "lstm",
    "rnn_attention_type": "mlp", "batch_size": str(BATCH_SIZE), "optimizer_type": "adam",
    "label_smoothing": "0.1", "rnn_decoder_hidden_dropout": "0.2", "bleu_sample_size": "0",
    "devices": "cpu",
}
VARIANTS = {
    "if-fp32": {"input_feeding": "true", "precision": "fp32"},
    "noif-fp32": {"input_feeding": "false", "precision": "fp32"},
    "if-bf16": {"input_feeding": "true", "precision": "bf16"},
    "noif-bf16": {"input_feeding": "false", "precision": "bf16"},
}

UPDATES_RATE = re.compile(r"updates/s=([0-9.eE+-]+)")
TOKENS_RATE = re.compile(r"target_tokens/s=([0-9.eE+-]+)")
UPDATE_COUNT = re.compile(r"\bupdates=(\d+)\b")


@dataclasses.dataclass(frozen=True)
class ProgressLine:
    """One progress line of our trainer: rates over the ``interval`` updates ending at ``update``."""
    update: int
    updates_per_s: float
    target_tokens_per_s: float


def parse_progress(log_text: str, interval: int) -> list:
    """Progress lines of our training log; update numbers from the line or from their order."""
    lines = []
    for text in log_text.splitlines():
        ups, tps = UPDATES_RATE.search(text), TOKENS_RATE.search(text)
        if not (ups and tps):
            continue
        count = UPDATE_COUNT.search(text)
        update = int(count.group(1)) if count else (len(lines) + 1) * interval
        lines.append(ProgressLine(update, float(ups.group(1)), float(tps.group(1))))
    return lines


def summarise_ours(log_text: str, interval: int, warmup_updates: int, mean_target_len: float,
                   peak_rss_mib=None, wall_s=0.0) -> dict:
    """Throughput over the progress intervals that start after ``warmup_updates``.

    Each interval covers ``interval`` updates, so its time is ``interval / updates_per_s``; the
    overall token rate is total tokens over total time.
    """
    measured = [p for p in parse_progress(log_text, interval) if p.update - interval >= warmup_updates]
    if not measured:
        raise RuntimeError("no progress line after the warm-up in our training log "
                           "(expected 'updates/s=' and 'target_tokens/s=' every "
                           f"{interval} updates)")
    times = [interval / p.updates_per_s for p in measured]
    tokens = sum(p.target_tokens_per_s * t for p, t in zip(measured, times))
    updates_per_s = len(measured) * interval / sum(times)
    return {"target_tokens_per_s": tokens / sum(times), "updates_per_s": updates_per_s,
            "samples_per_s": updates_per_s * BATCH_SIZE,
            "target_tokens_per_s_derived": updates_per_s * BATCH_SIZE * mean_target_len,
            "measured_updates": len(measured) * interval, "warmup_updates": warmup_updates,
            "peak_rss_mib": peak_rss_mib, "wall_s": wall_s}


def make_job_tree(base: Path, rec_dir: Path, hyperparameters: dict) -> Path:
    """A SageMaker ``/opt/ml`` tree under ``base`` with channels linked to ``rec_dir``."""
    rec_dir = Path(rec_dir).resolve()
    links = {"train": ["train.rec"], "validation": ["val.rec"],
             "vocab": ["vocab.src.json", "vocab.trg.json"]}
    for channel, names in links.items():
        directory = base / "input" / "data" / channel
        directory.mkdir(parents=True, exist_ok=True)
        for name in names:
            if not (rec_dir / name).exists():
                raise FileNotFoundError(f"prepared data file missing: {rec_dir / name}")
            os.symlink(rec_dir / name, directory / name)
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    channel_config = {c: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                          "RecordWrapperType": "None"} for c in links}
    (config / "inputdataconfig.json").write_text(json.dumps(channel_config, indent=2))
    for sub in ("model", "output/data", "checkpoints"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    return base


def job_hyperparameters(variant: dict, max_updates: int, log_every: int, seed: int) -> dict:
    """Reference hyperparameters for a speed run: no checkpoint inside the run."""
    hps = dict(REFERENCE_HYPERPARAMETERS, **variant)
    hps.update(max_num_batches=str(max_updates), checkpoint_frequency_num_batches=str(max_updates + 1),
               log_frequency_num_batches=str(log_every), seed=str(seed))
    return hps


def train_ours(data, work_dir: Path, variant: dict, max_updates: int, warmup_updates: int,
               log_every: int, seed: int, threads: int, wait_policy: str | None = "PASSIVE") -> dict:
    """One run of our training job; returns ``summarise_ours`` of its log."""
    base = Path(tempfile.mkdtemp(prefix="opt_ml_", dir=work_dir))
    make_job_tree(base, data.rec_dir, job_hyperparameters(variant, max_updates, log_every, seed))
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(sockeye_peer.omp_env(threads, wait_policy), SAGEMAKER_BASE_DIR=str(base),
               MXNET_SUBGRAPH_VERBOSE="0", PYTHONPATH=str(REPO_ROOT))
    name = "-".join(f"{k}={v}" for k, v in sorted(variant.items()))
    run = sockeye_peer.run_measured([sys.executable, "-m", "seq2seq.train_job"], env,
                                    work_dir / f"ours_{name}_{seed}.log", cwd=REPO_ROOT)
    if run.returncode != 0:
        failure = base / "output" / "failure"
        reason = failure.read_text()[:1000] if failure.exists() else run.log_text()[-2000:]
        raise RuntimeError(f"training job failed (exit {run.returncode}): {reason}")
    return summarise_ours(run.log_text(), log_every, warmup_updates,
                          sockeye_peer.mean_target_length(data.train_target), run.peak_rss_mib,
                          run.wall_s)


def median_of(runs: list, key: str):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise_runs(runs: list) -> dict:
    ok = [r for r in runs if "error" not in r]
    keys = ("target_tokens_per_s", "target_tokens_per_s_derived", "samples_per_s",
            "updates_per_s", "peak_rss_mib", "wall_s")
    return {"ok_runs": len(ok), "failed_runs": len(runs) - len(ok),
            "median": {k: median_of(ok, k) for k in keys if any(k in r for r in ok)}}


def machine_info() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown")
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    return {"cpu": model, "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags,
            "python": platform.python_version(), "platform": platform.platform()}


def run_one(label: str, func) -> dict:
    """Run ``func`` and tag its result with the load average before it; errors become records."""
    load = os.getloadavg()
    print(f"  {label}: load average before {load[0]:.2f} ...", flush=True)
    try:
        result = func()
    except Exception as err:  # one failing variant (e.g. bf16) must not lose the others
        print(f"    failed: {err}", flush=True)
        return {"error": str(err)[:2000], "load_before": list(load)}
    result["load_before"], result["load_after"] = list(load), list(os.getloadavg())
    print(f"    {result['target_tokens_per_s']:.0f} target tokens/s, peak RSS "
          f"{result['peak_rss_mib'] or float('nan'):.0f} MiB", flush=True)
    return result


def run_benchmark(args) -> dict:
    data = prepare()
    work = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="bench_train_"))
    work.mkdir(parents=True, exist_ok=True)
    sockeye_runs, ours = [], {name: [] for name in args.variants}
    policy = None if args.omp_wait_policy == "default" else args.omp_wait_policy
    for repeat in range(1, args.repeats + 1):
        print(f"Repeat {repeat}/{args.repeats}", flush=True)
        if not args.skip_sockeye:
            sockeye_runs.append(run_one("sockeye", lambda: dataclasses.asdict(sockeye_peer.train_sockeye(
                data, work, args.max_updates, args.warmup_updates, seed=repeat, threads=args.threads,
                wait_policy=policy))))
        for name in args.variants:
            ours[name].append(run_one(name, lambda name=name: train_ours(
                data, work, VARIANTS[name], args.max_updates, args.warmup_updates,
                sockeye_peer.SPEED_WINDOW_BATCHES, repeat, args.threads, policy)))
    return assemble(args, sockeye_runs, ours, work)


def assemble(args, sockeye_runs: list, ours: dict, work: Path) -> dict:
    sockeye = {"runs": sockeye_runs, **summarise_runs(sockeye_runs)}
    base = sockeye["median"].get("target_tokens_per_s") if sockeye_runs else None
    variants = {}
    for name, runs in ours.items():
        entry = {"hyperparameters": VARIANTS[name], "runs": runs, **summarise_runs(runs)}
        tps = entry["median"].get("target_tokens_per_s")
        entry["ratio_vs_sockeye"] = tps / base if (tps and base) else None
        variants[name] = entry
    return {
        "benchmark": "train", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(), "threads": args.threads, "omp_wait_policy": args.omp_wait_policy,
        "data": "multi30k en-de, lc.norm.tok",
        "reference_model": REFERENCE_HYPERPARAMETERS,
        "sockeye_command": sockeye_peer.REFERENCE_MODEL_ARGS,
        "max_updates": args.max_updates, "warmup_updates": args.warmup_updates,
        "repeats": args.repeats, "sockeye": sockeye, "ours": variants, "logs": str(work),
        "note": "Sockeye target tokens/s = samples/s x mean target length (incl. </s>) of the training "
                "data; ours counts real target tokens per batch. Load averages are recorded per run: "
                "other work on this 2-core machine adds noise.",
    }


def print_table(result: dict) -> None:
    rows = [("sockeye 1.18", result["sockeye"], None)] if result["sockeye"]["runs"] else []
    rows += [(name, v, v["ratio_vs_sockeye"]) for name, v in result["ours"].items()]
    print(f"\n{'engine':<14}{'ok':>4}{'tgt tok/s':>11}{'derived':>10}{'upd/s':>8}{'RSS MiB':>9}{'ratio':>7}")
    for name, entry, ratio in rows:
        m = entry["median"]

        def fmt(key, spec):
            width = int(spec[1:].split(".")[0])
            return format(m[key], spec) if m.get(key) is not None else format("-", f">{width}")
        print(f"{name:<14}{entry['ok_runs']:>4}{fmt('target_tokens_per_s', '>11.0f')}"
              f"{fmt('target_tokens_per_s_derived', '>10.0f')}{fmt('updates_per_s', '>8.2f')}"
              f"{fmt('peak_rss_mib', '>9.0f')}{format(ratio, '.2f') if ratio else '-':>7}")
    print("(medians over repeats; ratio = ours / sockeye target tokens/s)")


def write_json_atomically(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-updates", type=int, default=300, help="updates per run")
    parser.add_argument("--warmup-updates", type=int, default=50, help="updates excluded from speed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=["if-fp32", "noif-fp32"], choices=list(VARIANTS),
                        help="our configurations (the bf16 ones need precision=bf16 in the job)")
    parser.add_argument("--skip-sockeye", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS for both engines")
    parser.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE", "default"], default="PASSIVE",
                        help="OMP_WAIT_POLICY for both engines (PASSIVE: idle threads sleep; best on a "
                             "shared machine)")
    parser.add_argument("--work-dir", help="keep logs here (default: a new temp dir)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    if args.warmup_updates % sockeye_peer.SPEED_WINDOW_BATCHES or args.max_updates <= args.warmup_updates:
        parser.error("--warmup-updates must be a multiple of 50 and below --max-updates")
    sockeye_peer.exit_on_sigterm()
    result = run_benchmark(args)
    write_json_atomically(args.output, result)
    print_table(result)
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
