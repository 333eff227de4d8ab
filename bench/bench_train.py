"""Training-speed benchmark: our training job against Sockeye 1.18 and OpenNMT-py 3.5 on Multi30k en-de, same run.

All engines train the reference model (embeddings 256, bi-LSTM encoder 512 in total, LSTM
decoder 512, MLP attention, batches of 64 sentences, Adam, label smoothing 0.1, decoder hidden
dropout 0.2 as in Sockeye's defaults) on the same tokenised, lower-cased Multi30k for a fixed
number of updates. Speed is target tokens/s (target words + ``</s>``, no padding) over the updates
after the warm-up; peak RSS is the training process's maximum resident set size.

Ours runs through the real training job (``python -m seq2seq.train_job`` in a temporary
``SAGEMAKER_BASE_DIR`` tree whose channels link to ``build/multi30k/rec``) and reports its own
token count in its progress lines (``updates/s=...`` and ``target_tokens/s=...``). Sockeye reports
samples/s; see ``bench.sockeye_peer`` for the derivation of its target tokens/s. OpenNMT-py reports
its real target tokens and its own time per 50-update window; see ``bench.onmt_peer``.

The machine's FP32 ceiling is measured in the same run (``bench.fp32_ceiling``: an MXNet
``FullyConnected`` of the output layer's shape, forward and backward, same threads), and each
engine's rate is also given as GFLOP/s and as a fraction of that ceiling, from the reference
model's FLOPs per target token computed from its shapes (``reference_flops``).

The small-model benchmark (``bench.small_model``: embeddings 64, hidden 128, 40-word vocabulary,
sentences of 4-14 tokens, batch 64) reports milliseconds per update through the training job,
with and without input feeding (1,000-update run minus 200-update run, whole process).

Runs are interleaved (ceiling, Sockeye, OpenNMT-py, each of our variants, the small model,
repeated) so that background load hits every engine alike; the load average before each run is
recorded. Results go to ``bench/results/train.json`` (paths in it are relative to the repository)
and a table is printed.

Usage: ``python -m bench.bench_train [--updates 300] [--repeats 3] [--variants ...] [--skip-onmt]``
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import onmt_peer, small_model, sockeye_peer
from bench.job_runner import run_training_job
from bench.prepare_multi30k import prepare
from bench.results_io import relative, save_results
from seq2seq.local_job import make_job_tree

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


def job_hyperparameters(variant: dict, max_updates: int, log_every: int, seed: int) -> dict:
    """Reference hyperparameters for a speed run: no checkpoint inside the run."""
    hps = dict(REFERENCE_HYPERPARAMETERS, **variant)
    hps.update(max_num_batches=str(max_updates), checkpoint_frequency_num_batches=str(max_updates + 1),
               log_frequency_num_batches=str(log_every), seed=str(seed))
    return hps


def train_ours(data, work_dir: Path, variant: dict, max_updates: int, warmup_updates: int,
               log_every: int, seed: int, threads: int, wait_policy: str | None = None) -> dict:
    """One run of our training job; returns ``summarise_ours`` of its log."""
    base = Path(tempfile.mkdtemp(prefix="opt_ml_", dir=work_dir))
    make_job_tree(base, data.rec_dir, job_hyperparameters(variant, max_updates, log_every, seed))
    name = "-".join(f"{k}={v}" for k, v in sorted(variant.items()))
    run = run_training_job(base, threads, wait_policy, work_dir / f"ours_{name}_{seed}.log")
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


def run_one(label: str, func, describe=None) -> dict:
    """Run ``func`` and tag its result with the load average before it; errors become records."""
    load = os.getloadavg()
    print(f"  {label}: load average before {load[0]:.2f} ...", flush=True)
    try:
        result = func()
    except Exception as err:  # one failing engine or variant must not lose the others
        print(f"    failed: {err}", flush=True)
        # JSON results hold repository-relative paths only.
        message = str(err).replace(str(REPO_ROOT) + os.sep, "").replace(str(Path.home()), "~")
        return {"error": message[:2000], "load_before": list(load)}
    result["load_before"], result["load_after"] = list(load), list(os.getloadavg())
    if describe is None:
        print(f"    {result['target_tokens_per_s']:.0f} target tokens/s, peak RSS "
              f"{result['peak_rss_mib'] or float('nan'):.0f} MiB", flush=True)
    else:
        print(f"    {describe(result)}", flush=True)
    return result


# ----- arithmetic -----
def _rnn_cell_flops(cell: str, inputs: int, hidden: int) -> float:
    """Multiply-adds x 2 of one RNN step: gates x hidden x (inputs + hidden)."""
    gates = 4 if cell == "lstm" else 3
    return 2.0 * gates * hidden * (inputs + hidden)


def reference_flops(source_vocab: int, target_vocab: int, mean_source_len: float, mean_target_len: float,
                    input_feeding: bool = True, embed: int = 256, hidden: int = 512, attention: int = 512,
                    cell: str = "lstm") -> dict:
    """Training FLOPs per real target token of the reference model, from its shapes.

    Forward, per source token: the bidirectional encoder (two cells of ``hidden/2``) and the MLP
    attention's key projection. Per target token: the decoder cell (input: embedding, plus the
    previous attentional state with input feeding), the query projection, scores and context over
    the mean source length, the attentional state ``tanh(W[h; c])`` and the output layer over the
    target vocabulary. Training = 3 x forward (the backward pass computes gradients of inputs and
    of weights: two products per forward product). Embedding look-ups, element-wise work, softmax
    and the optimizer are left out; padding is not counted (the FLOPs are those of real tokens).
    """
    half = hidden // 2
    encoder = 2 * _rnn_cell_flops(cell, embed, half) + 2.0 * hidden * attention
    decoder_input = embed + (hidden if input_feeding else 0)
    decoder = (_rnn_cell_flops(cell, decoder_input, hidden) + 2.0 * hidden * attention
               + mean_source_len * (2.0 * attention + 2.0 * hidden)      # scores (v . tanh) + context
               + 2.0 * (2 * hidden) * hidden                             # tanh(W [h; c])
               + 2.0 * hidden * target_vocab)                            # output layer
    output_layer = 2.0 * hidden * target_vocab
    forward = decoder + encoder * mean_source_len / mean_target_len
    return {"forward_flops_per_target_token": forward, "training_flops_per_target_token": 3.0 * forward,
            "output_layer_share": output_layer / forward, "input_feeding": input_feeding,
            "source_vocab": source_vocab, "target_vocab": target_vocab,
            "mean_source_len": mean_source_len, "mean_target_len": mean_target_len}


def vocab_size(path: Path) -> int:
    return len(json.loads(Path(path).read_text()))


def measure_ceiling(tokens: int, vocab: int, hidden: int, threads: int, wait_policy, repeats: int = 10) -> dict:
    """``bench.fp32_ceiling`` in its own process with the benchmark's OpenMP settings."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(sockeye_peer.omp_env(threads, wait_policy), MXNET_SUBGRAPH_VERBOSE="0", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "bench.fp32_ceiling", "--tokens", str(tokens), "--vocab",
                           str(vocab), "--hidden", str(hidden), "--repeats", str(repeats)],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"fp32_ceiling failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----- the run -----
def run_benchmark(args) -> dict:
    data = prepare(onmt_peer.MULTI30K_DIR)
    if args.work_dir:
        work = Path(args.work_dir).resolve()
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        work = REPO_ROOT / "build" / "bench_train" / stamp
    work.mkdir(parents=True, exist_ok=True)
    policy = None if args.omp_wait_policy == "default" else args.omp_wait_policy
    mean_src = sockeye_peer.mean_target_length(data.train_source)  # words + </s>, as on the target side
    mean_trg = sockeye_peer.mean_target_length(data.train_target)
    src_vocab, trg_vocab = vocab_size(data.rec_dir / "vocab.src.json"), vocab_size(data.rec_dir / "vocab.trg.json")
    flops = {flag: reference_flops(src_vocab, trg_vocab, mean_src, mean_trg, input_feeding=flag)
             for flag in (True, False)}
    ceiling_tokens = int(round(BATCH_SIZE * mean_trg))
    small_rec = None if args.skip_small else small_model.prepare()
    runs = {"ceiling": [], "sockeye": [], "onmt": [], "ours": {name: [] for name in args.variants},
            "small": {name: [] for name in args.small_variants}}
    load_start = list(os.getloadavg())
    for repeat in range(1, args.repeats + 1):
        print(f"Repeat {repeat}/{args.repeats}", flush=True)
        runs["ceiling"].append(run_one("fp32 ceiling", lambda: measure_ceiling(
            ceiling_tokens, trg_vocab, 512, args.threads, policy),
            lambda r: f"{r['forward_backward_gflops']:.1f} GFLOP/s forward+backward "
                      f"({r['forward_gflops']:.1f} forward)"))
        if not args.skip_sockeye:
            runs["sockeye"].append(run_one("sockeye", lambda: dataclasses.asdict(sockeye_peer.train_sockeye(
                data, work, args.updates, args.warmup_updates, seed=repeat, threads=args.threads,
                wait_policy=policy))))
        if not args.skip_onmt:
            runs["onmt"].append(run_one("onmt-py", lambda: dataclasses.asdict(onmt_peer.train_onmt(
                data, work, args.updates, args.warmup_updates, seed=repeat, threads=args.threads,
                wait_policy=policy, report_every=args.window))))
        for name in args.variants:
            runs["ours"][name].append(run_one(name, lambda name=name: train_ours(
                data, work, VARIANTS[name], args.updates, args.warmup_updates,
                args.window, repeat, args.threads, policy)))
        for name in args.small_variants:
            runs["small"][name].append(run_one(f"small-{name}", lambda name=name: small_model.measure(
                small_rec, work, name, args.small_updates[0], args.small_updates[1], seed=repeat,
                threads=args.threads, wait_policy=policy),
                lambda r: f"{r['whole_process_ms']:.1f} ms/update whole process, "
                          f"{r['window_ms'] or float('nan'):.1f} ms/update measured window"))
    return assemble(args, runs, work, flops, load_start)


def _gflops(tokens_per_s, flops: dict):
    return tokens_per_s * flops["training_flops_per_target_token"] / 1e9 if tokens_per_s else None


def _engine_entry(runs: list, flops: dict, ceiling_gflops) -> dict:
    entry = {"runs": runs, **summarise_runs(runs)}
    gflops = _gflops(entry["median"].get("target_tokens_per_s"), flops)
    entry["gflops"] = gflops
    entry["fraction_of_ceiling"] = gflops / ceiling_gflops if (gflops and ceiling_gflops) else None
    return entry


def _ratio(a, b):
    return a / b if (a and b) else None


def assemble(args, runs: dict, work: Path, flops: dict, load_start) -> dict:
    ceiling_ok = [r for r in runs["ceiling"] if "error" not in r]
    ceiling = {"runs": runs["ceiling"],
               "median_forward_backward_gflops": median_of(ceiling_ok, "forward_backward_gflops"),
               "median_forward_gflops": median_of(ceiling_ok, "forward_gflops"),
               "shape": ceiling_ok[0]["shape"] if ceiling_ok else None}
    peak = ceiling["median_forward_backward_gflops"]
    sockeye = _engine_entry(runs["sockeye"], flops[True], peak)   # Sockeye 1.x RNN decoders feed inputs
    onmt = _engine_entry(runs["onmt"], flops[True], peak)         # input_feed: 1
    base_s = sockeye["median"].get("target_tokens_per_s")
    base_o = onmt["median"].get("target_tokens_per_s")
    variants = {}
    for name, variant_runs in runs["ours"].items():
        feeding = VARIANTS[name]["input_feeding"] == "true"
        entry = {"hyperparameters": VARIANTS[name], **_engine_entry(variant_runs, flops[feeding], peak)}
        tps = entry["median"].get("target_tokens_per_s")
        entry["ratio_vs_sockeye"] = _ratio(tps, base_s)
        entry["ratio_vs_onmt"] = _ratio(tps, base_o)
        entry["rss_vs_sockeye"] = _ratio(entry["median"].get("peak_rss_mib"), sockeye["median"].get("peak_rss_mib"))
        variants[name] = entry
    small = {}
    for name, small_runs in runs["small"].items():
        ok = [r for r in small_runs if "error" not in r]
        small[name] = {"hyperparameters": dict(small_model.HYPERPARAMETERS, **small_model.VARIANTS[name]),
                       "runs": small_runs, "ok_runs": len(ok), "failed_runs": len(small_runs) - len(ok),
                       "median_whole_process_ms": median_of(ok, "whole_process_ms"),
                       "median_window_ms": median_of(ok, "window_ms"),
                       "target_ms": small_model.TARGET_MS_PER_UPDATE}
        m = small[name]["median_whole_process_ms"]
        small[name]["meets_target"] = (m <= small_model.TARGET_MS_PER_UPDATE) if m is not None else None
    return {
        "benchmark": "train", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(), "threads": args.threads, "omp_wait_policy": args.omp_wait_policy,
        "load_average_start": load_start, "load_average_end": list(os.getloadavg()),
        "data": "multi30k en-de, lc.norm.tok",
        "reference_model": REFERENCE_HYPERPARAMETERS,
        "sockeye_command": sockeye_peer.REFERENCE_MODEL_ARGS,
        "onmt": {"version": onmt_peer.ONMT, "torch": onmt_peer.TORCH,
                 "settings": onmt_peer.reference_settings(args.updates, 1, args.window)},
        "max_updates": args.updates, "warmup_updates": args.warmup_updates, "window_updates": args.window,
        "repeats": args.repeats, "flops": {"input_feeding": flops[True], "no_input_feeding": flops[False]},
        "fp32_ceiling": ceiling, "sockeye": sockeye, "onmt_py": onmt, "ours": variants,
        "small_model": small, "small_model_updates": args.small_updates, "logs": relative(work),
        "note": "Sockeye target tokens/s = samples/s x mean target length (incl. </s>) of the training "
                "data; ours and OpenNMT-py count real target tokens per batch. GFLOP/s = target tokens/s x "
                "the model's training FLOPs per target token (flops); fraction_of_ceiling divides by the "
                "median forward+backward rate of a FullyConnected of the output layer's shape measured "
                "in the same run. Load averages are recorded per run: other work on this 2-core machine "
                "adds noise.",
    }


def print_table(result: dict) -> None:
    peak = result["fp32_ceiling"]["median_forward_backward_gflops"]
    print(f"\nFP32 ceiling (FullyConnected {result['fp32_ceiling']['shape']}, forward+backward): "
          + (f"{peak:.1f} GFLOP/s" if peak else "-"))
    for key, label in (("input_feeding", "input feeding"), ("no_input_feeding", "no input feeding")):
        f = result["flops"][key]
        print(f"model FLOPs per target token ({label}): {f['training_flops_per_target_token'] / 1e6:.1f} M "
              f"(output layer {100 * f['output_layer_share']:.0f}%)")
    rows = [("sockeye 1.18", result["sockeye"], None, None)] if result["sockeye"]["runs"] else []
    rows += [("onmt-py 3.5", result["onmt_py"], None, None)] if result["onmt_py"]["runs"] else []
    rows += [(name, v, v["ratio_vs_sockeye"], v["ratio_vs_onmt"]) for name, v in result["ours"].items()]
    print(f"\n{'engine':<14}{'ok':>4}{'tgt tok/s':>11}{'derived':>10}{'upd/s':>8}{'RSS MiB':>9}"
          f"{'GFLOP/s':>9}{'ceil':>6}{'x sock':>8}{'x onmt':>8}")

    def fmt(value, spec):
        width = int(spec[1:].split(".")[0])
        return format(value, spec) if value is not None else format("-", f">{width}")
    for name, entry, vs_s, vs_o in rows:
        m = entry["median"]
        frac = entry.get("fraction_of_ceiling")
        print(f"{name:<14}{entry['ok_runs']:>4}{fmt(m.get('target_tokens_per_s'), '>11.0f')}"
              f"{fmt(m.get('target_tokens_per_s_derived'), '>10.0f')}{fmt(m.get('updates_per_s'), '>8.2f')}"
              f"{fmt(m.get('peak_rss_mib'), '>9.0f')}{fmt(entry.get('gflops'), '>9.1f')}"
              f"{format(f'{100 * frac:.0f}%', '>6') if frac else format('-', '>6')}"
              f"{fmt(vs_s, '>8.2f')}{fmt(vs_o, '>8.2f')}")
    print("(medians over repeats; ceil = share of the FP32 ceiling; x sock / x onmt = ours / peer "
          "target tokens/s)")
    if result["small_model"]:
        print(f"\nsmall model (emb 64, hidden 128, vocab 40, batch 64), ms per update, "
              f"{result['small_model_updates'][0]} minus {result['small_model_updates'][1]} updates:")
        for name, entry in result["small_model"].items():
            verdict = {True: "meets", False: "misses", None: "-"}[entry["meets_target"]]
            print(f"  {name:<6} whole process {fmt(entry['median_whole_process_ms'], '>7.1f')} ms, "
                  f"measured window {fmt(entry['median_window_ms'], '>7.1f')} ms "
                  f"(target <= {entry['target_ms']:.0f}: {verdict})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", "--max-updates", dest="updates", type=int, default=300,
                        help="updates per reference-model run")
    parser.add_argument("--warmup-updates", type=int, default=50, help="updates excluded from speed")
    parser.add_argument("--window", type=int, default=sockeye_peer.SPEED_WINDOW_BATCHES,
                        help="speed window of ours and OpenNMT-py in updates (Sockeye's is always 50); "
                             "smaller only for smoke runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="*", default=["if-fp32", "noif-fp32"], choices=list(VARIANTS),
                        help="our configurations (the bf16 ones need precision=bf16 in the job)")
    parser.add_argument("--skip-sockeye", action="store_true")
    parser.add_argument("--skip-onmt", action="store_true")
    parser.add_argument("--small-updates", type=int, nargs=2, default=[1000, 200], metavar=("LONG", "SHORT"),
                        help="small model: ms/update = (time of LONG updates - time of SHORT) / (LONG - SHORT)")
    parser.add_argument("--small-variants", nargs="*", default=list(small_model.VARIANTS),
                        choices=list(small_model.VARIANTS), help="small model: with/without input feeding")
    parser.add_argument("--skip-small", action="store_true", help="no small-model runs")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS for every engine")
    parser.add_argument("--omp-wait-policy", choices=["PASSIVE", "ACTIVE", "default"], default="default",
                        help="OMP_WAIT_POLICY for every engine (default: unset, as the job ships; PASSIVE: idle "
                             "threads sleep, for an oversubscribed machine)")
    parser.add_argument("--work-dir", help="keep logs here (default: build/bench_train/<date-time>)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    if args.skip_small:
        args.small_variants = []
    if args.window < 1 or args.warmup_updates % args.window or args.updates <= args.warmup_updates:
        parser.error("--warmup-updates must be a multiple of --window and below --updates")
    if not 0 < args.small_updates[1] < args.small_updates[0]:
        parser.error("--small-updates LONG SHORT needs 0 < SHORT < LONG")
    sockeye_peer.exit_on_sigterm()
    result = run_benchmark(args)
    return save_results(args.output, result, print_table)


if __name__ == "__main__":
    sys.exit(main())
