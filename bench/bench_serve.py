"""Serving benchmark: the endpoint under concurrent load, and batch decoding beside Sockeye 1.18.

1. Model: `--model DIR` (a trained model), else a fixed random model of the reference size
   (embeddings 256, bi-LSTM encoder 512 in total, LSTM decoder 512, MLP attention 512, vocabularies
   built from tokenised Multi30k en→de, length-ratio statistics of its training data).
2. Endpoint: `container/serve` on 127.0.0.1 (default workers), then a closed-loop load generator with
   1, 8 and 32 clients; each sends single-sentence JSON requests (Multi30k validation sentences,
   beam 5) for `--duration-s` after a warm-up. Reports requests/s, p50/p99 latency and errors;
   each level is repeated `--repeats` times and the medians are quoted.
3. Batch decoding: `python -m seq2seq.translate --beam-size 5` over the validation set
   (sentences/s, translation time only, model loading excluded).
4. Sockeye 1.18 (`bench.sockeye_peer`): a model of the same size with a checkpoint after a few
   updates, then `sockeye.translate` over the same file, same beam and batch size. If it cannot
   run, the gap is recorded with its reason.

A random model rarely emits </s>, so it decodes to its length limit: mean output lengths are
reported next to every decoding speed, and tokens/s alongside sentences/s.

Usage: python -m bench.bench_serve [--model DIR] [--duration-s 20] [--repeats 3] [--skip-sockeye]
Writes bench/results/serve.json and prints a table.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.serve_load import run_load  # noqa: E402
from bench.serve_process import ServeProcess  # noqa: E402
from bench.results_io import relative, save_results  # noqa: E402

RESULTS_PATH = REPO_ROOT / "bench" / "results" / "serve.json"
WORK_DIR = REPO_ROOT / "build" / "bench" / "serve"
REFERENCE_SIZE = dict(num_embed_source=256, num_embed_target=256, rnn_num_hidden=512, rnn_attention_type="mlp",
                      rnn_attention_num_hidden=512, num_layers_encoder=1, num_layers_decoder=1,
                      max_seq_len_source=100, max_seq_len_target=100)
BEAM_SIZE = 5
DECODE_BATCH_SENTENCES = 32  # the Translator's internal batch; Sockeye decodes with the same batch size
SOCKEYE_UPDATES = 1  # a near-random Sockeye model, like our random one: both decode to their length caps


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="trained model directory (default: random reference model)")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--duration-s", type=float, default=20.0, help="measured seconds per level and repeat")
    parser.add_argument("--warmup-s", type=float, default=5.0, help="unmeasured seconds before each level")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-requests", type=int, default=5000, help="bound on requests per measurement")
    parser.add_argument("--val-sentences", type=int, help="decode only the first N validation sentences (smoke runs)")
    parser.add_argument("--threads", type=int,
                        help="OMP_NUM_THREADS of the server, the translate CLI and Sockeye alike (default: unset, "
                             "the product's own choice, seq2seq.runtime_env; Sockeye gets the machine's CPUs)")
    parser.add_argument("--omp-wait-policy", default="default",
                        help="OMP_WAIT_POLICY for all three; 'default' (the default) leaves it unset, as the product "
                             "ships; PASSIVE makes idle threads sleep, which only helps an oversubscribed host")
    parser.add_argument("--workers", type=int, help="SAGEMAKER_MODEL_SERVER_WORKERS (default: the server's own)")
    parser.add_argument("--skip-sockeye", action="store_true")
    parser.add_argument("--sockeye-model", type=Path, help="existing Sockeye model directory (params.best)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    return parser.parse_args(argv)


def length_ratio(source_path: Path, target_path: Path) -> tuple:
    """Mean and standard deviation of target/source token counts over non-empty pairs."""
    ratios = []
    with open(source_path, encoding="utf-8") as sources, open(target_path, encoding="utf-8") as targets:
        for source, target in zip(sources, targets):
            if source.split() and target.split():
                ratios.append(len(target.split()) / len(source.split()))
    return statistics.mean(ratios), statistics.pstdev(ratios)


def reference_model(data, work_dir: Path) -> Path:
    """The random reference-size model (seed 0), rebuilt only when missing."""
    from seq2seq.data.vocab import build_vocabulary
    from tests.untrained_model import save_untrained_model

    model_dir = work_dir / "random_reference_model"
    stamp = model_dir / "bench_stamp.json"
    mean, std = length_ratio(data.train_source, data.train_target)
    settings = dict(REFERENCE_SIZE, length_ratio_mean=round(mean, 4), length_ratio_std=round(std, 4))
    if stamp.exists() and json.loads(stamp.read_text()) == settings:
        return model_dir
    with open(data.train_source, encoding="utf-8") as f:
        source_vocab = build_vocabulary(line.split() for line in f)
    with open(data.train_target, encoding="utf-8") as f:
        target_vocab = build_vocabulary(line.split() for line in f)
    save_untrained_model(str(model_dir), source_vocab, target_vocab, seed=0, **settings)
    stamp.write_text(json.dumps(settings))
    return model_dir


def model_summary(model_dir: Path) -> dict:
    config = json.loads((model_dir / "config.json").read_text())
    model = config["model"]
    keys = ("source_vocab_size", "target_vocab_size", "num_embed_source", "num_embed_target", "rnn_num_hidden",
            "rnn_attention_type", "rnn_attention_num_hidden", "max_seq_len_source", "max_seq_len_target")
    return {key: model.get(key) for key in keys}


def measure_endpoint(model_dir: Path, sentences: list, args, work_dir: Path) -> dict:
    """Start `serve` on the model, then load it at each concurrency level; medians over repeats."""
    base_dir = work_dir / "opt_ml"
    base_dir.mkdir(parents=True, exist_ok=True)
    link = base_dir / "model"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(model_dir.resolve())
    levels = {}
    env = omp_settings(args)
    if args.workers:
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(args.workers)
    with ServeProcess(base_dir, work_dir / "serve.log", **env) as server:
        for clients in [int(c) for c in args.clients.split(",")]:
            run_load(server.url, sentences, clients, args.warmup_s, BEAM_SIZE, args.max_requests)
            runs = [run_load(server.url, sentences, clients, args.duration_s, BEAM_SIZE, args.max_requests)
                    for _ in range(args.repeats)]
            levels[str(clients)] = _median_of_runs(runs)
            print(f"  {clients:>2} clients: {levels[str(clients)]['requests_per_s']:.2f} req/s, "
                  f"p50 {levels[str(clients)]['p50_ms']:.0f} ms, p99 {levels[str(clients)]['p99_ms']:.0f} ms, "
                  f"errors {levels[str(clients)]['errors']}", flush=True)
        settings = server.settings()
    return {"server": settings, "levels": levels}


def _median_of_runs(runs: list) -> dict:
    keys = ("requests_per_s", "p50_ms", "p99_ms", "mean_output_tokens")
    summary = {key: round(statistics.median(run[key] for run in runs), 2) for key in keys}
    summary["errors"] = sum(run["errors"] for run in runs)
    summary["requests"] = sum(run["requests"] for run in runs)
    summary["error_examples"] = [e for run in runs for e in run["error_examples"]][:5]
    summary["runs"] = runs
    return summary


def measure_batch_decoding(model_dir: Path, source: Path, args, work_dir: Path) -> dict:
    """`python -m seq2seq.translate` over `source` with beam 5; its own timing excludes model loading."""
    stats_path = work_dir / "translate_stats.json"
    output = work_dir / "translate_output.txt"
    command = [sys.executable, "-m", "seq2seq.translate", "--model", str(model_dir), "--input", str(source),
               "--output", str(output), "--beam-size", str(BEAM_SIZE), "--stats-json", str(stats_path)]
    start = time.monotonic()
    subprocess.run(command, cwd=REPO_ROOT, check=True, env=_env(args))
    stats = json.loads(stats_path.read_text())
    stats["wall_s"] = round(time.monotonic() - start, 2)
    stats["mean_output_tokens"] = round(stats["output_tokens"] / max(1, stats["sentences"]), 2)
    stats["output_tokens_per_second"] = round(stats["output_tokens"] / stats["seconds"], 1)
    return stats


def measure_sockeye(data, source: Path, args, work_dir: Path) -> dict:
    """sockeye.translate speed on the same file, or {"gap": reason} when it cannot run here."""
    if args.skip_sockeye:
        return {"gap": "skipped (--skip-sockeye)"}
    try:
        from bench import sockeye_peer
    except ImportError as error:
        return {"gap": f"bench.sockeye_peer is not available ({error})"}
    try:
        model_dir = args.sockeye_model or _sockeye_reference_model(sockeye_peer, data, work_dir)
        output = work_dir / "sockeye_output.txt"
        result = sockeye_peer.sockeye_translate_speed(model_dir, source, beam=BEAM_SIZE,
                                                      batch_size=DECODE_BATCH_SENTENCES, threads=args.threads or os.cpu_count(),
                                                      output_file=output, wait_policy=_wait_policy(args))
    except Exception as error:  # reported as a gap in the results, not hidden
        return {"gap": f"{type(error).__name__}: {str(error)[-800:]}"}
    tokens = sum(len(line.split()) for line in output.read_text(encoding="utf-8").splitlines())
    result["model"] = relative(model_dir)
    result["mean_output_tokens"] = round(tokens / max(1, result["sentences"]), 2)
    result["output_tokens_per_second"] = round(result["sentences_per_s"] * tokens / max(1, result["sentences"]), 1)
    return result


def _wait_policy(args):
    return None if args.omp_wait_policy == "default" else args.omp_wait_policy


def _sockeye_reference_model(sockeye_peer, data, work_dir: Path) -> Path:
    """A Sockeye model of the reference size, checkpointed after a few updates (params.best)."""
    model_dir = work_dir / "sockeye_reference_model"
    if (model_dir / "params.best").exists():
        return model_dir
    command = sockeye_peer.train_command(data.train_source, data.train_target, data.val_source, data.val_target,
                                         model_dir, SOCKEYE_UPDATES, seed=1, checkpoint_interval=SOCKEYE_UPDATES,
                                         python=sockeye_peer.ensure_venv())
    run = sockeye_peer.run_measured(command, sockeye_peer.sockeye_env(2, "PASSIVE"), work_dir / "sockeye_train.log")
    if run.returncode != 0 or not (model_dir / "params.best").exists():
        raise RuntimeError(f"sockeye.train exited {run.returncode}; log {run.log_path}: {run.log_text()[-600:]}")
    return model_dir


def omp_settings(args) -> dict:
    """The OpenMP variables every measured process gets (the same for both engines)."""
    settings = {} if args.threads is None else {"OMP_NUM_THREADS": str(args.threads)}
    if args.omp_wait_policy != "default":
        settings["OMP_WAIT_POLICY"] = args.omp_wait_policy
    return settings


def _env(args) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    env.update(omp_settings(args))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def print_table(results: dict) -> None:
    print("\nEndpoint (single-sentence JSON requests, beam 5; medians of repeats)")
    print(f"{'clients':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'out tok':>8}")
    for clients, level in results["endpoint"]["levels"].items():
        print(f"{clients:>8} {level['requests_per_s']:>8.2f} {level['p50_ms']:>8.0f} {level['p99_ms']:>8.0f} "
              f"{level['errors']:>7} {level['mean_output_tokens']:>8.1f}")
    print("\nBatch decoding of the Multi30k validation set (beam 5)")
    print(f"{'system':>22} {'sent/s':>8} {'out tok/s':>10} {'out tok':>8}")
    ours = results["batch_decoding"]
    print(f"{'seq2seq.translate':>22} {ours['sentences_per_second']:>8.2f} {ours['output_tokens_per_second']:>10.1f} "
          f"{ours['mean_output_tokens']:>8.1f}")
    sockeye = results["sockeye"]
    if "gap" in sockeye:
        print(f"{'sockeye.translate':>22}   GAP: {sockeye['gap']}")
    else:
        print(f"{'sockeye.translate 1.18':>22} {sockeye['sentences_per_s']:>8.2f} "
              f"{sockeye['output_tokens_per_second']:>10.1f} {sockeye['mean_output_tokens']:>8.1f}")
        print(f"ratio (ours / sockeye): {results['ratio_sentences_per_s']:.2f}x sentences/s, "
              f"{results['ratio_output_tokens_per_s']:.2f}x output tokens/s")


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.pop("OMP_WAIT_POLICY", None)
    os.environ.pop("OMP_NUM_THREADS", None)
    os.environ.update(omp_settings(args))
    from bench.prepare_multi30k import prepare

    data = prepare(recordio=False)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    model_dir = args.model.resolve() if args.model else reference_model(data, WORK_DIR)
    decode_source = Path(data.val_source)
    if (model_dir / "subword.src.model").exists():      # a raw-text model: the raw, cased validation sentences
        from seq2seq.shared_data import shared_data_dir
        decode_source = shared_data_dir("multi30k") / "val.en"
    with open(decode_source, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    if args.val_sentences:
        decode_source = WORK_DIR / f"val_first_{args.val_sentences}.txt"
        decode_source.write_text("".join(s + "\n" for s in sentences[:args.val_sentences]), encoding="utf-8")
    print(f"model: {model_dir}; endpoint load ({args.clients} clients, {args.duration_s:g} s x {args.repeats})")
    results = {
        "benchmark": "serve",
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(), **omp_settings(args),
                 "load_average_at_start": os.getloadavg()},
        "model": {"path": relative(model_dir), "trained": bool(args.model), **model_summary(model_dir)},
        "endpoint": measure_endpoint(model_dir, sentences, args, WORK_DIR),
    }
    print("batch decoding with python -m seq2seq.translate ...", flush=True)
    results["batch_decoding"] = measure_batch_decoding(model_dir, decode_source, args, WORK_DIR)
    results["batch_decoding"]["source"] = relative(decode_source)
    print("sockeye.translate ...", flush=True)
    results["sockeye"] = measure_sockeye(data, decode_source, args, WORK_DIR)
    if "gap" not in results["sockeye"]:
        results["ratio_sentences_per_s"] = round(results["batch_decoding"]["sentences_per_second"]
                                                 / results["sockeye"]["sentences_per_s"], 2)
        results["ratio_output_tokens_per_s"] = round(results["batch_decoding"]["output_tokens_per_second"]
                                                     / results["sockeye"]["output_tokens_per_second"], 2)
    results["host"]["load_average_at_end"] = os.getloadavg()
    return save_results(args.output, results, print_table)


if __name__ == "__main__":
    sys.exit(main())
