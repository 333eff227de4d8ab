"""Serving layouts on this machine: workers, OpenMP threads per worker, MXNet's engine, OpenMP wait policy and
batching settings, each measured with 1 and 8 concurrent one-sentence clients (beam 5).

Every layout's server (`container/serve`) is started first and kept up; the measurements then go round the
layouts in turn (`--repeats` rounds, each layout and client count once a round), so a burst of load from
elsewhere falls on all of them alike; medians over the rounds. Idle servers use no CPU. The first layout is
what `serve` does unset (the product's defaults); the others set what they name.

`--previous COMMIT` adds the endpoint as it was at that commit (its `container/serve`, see
bench.previous_release), with its own defaults: today's figures in the same run.

Usage: python -m bench.serve_layouts --model DIR [--duration-s 10] [--repeats 3] [--previous COMMIT]
Results: bench/results/serve-layouts.json and a table (the README's serving section quotes it).
"""

import argparse
import os
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.previous_release import export_commit  # noqa: E402
from bench.results_io import relative, save_results  # noqa: E402
from bench.serve_load import run_load  # noqa: E402
from bench.serve_process import ServeProcess  # noqa: E402

RESULTS_PATH = REPO_ROOT / "bench" / "results" / "serve-layouts.json"
WORK_DIR = REPO_ROOT / "build" / "bench" / "serve-layouts"
BEAM_SIZE = 5
CLIENTS = (1, 8)
# name -> the environment of the server on top of the product's defaults (runtime_env, settings).
LAYOUTS = {
    "shipped defaults": {},
    "1 worker x 2 threads": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "OMP_NUM_THREADS": "2"},
    "1 worker x 1 thread": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "OMP_NUM_THREADS": "1"},
    "2 workers x 1 thread": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "OMP_NUM_THREADS": "1"},
    "1 worker x 2 threads, threaded engine": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "OMP_NUM_THREADS": "2",
                                              "MXNET_ENGINE_TYPE": "ThreadedEnginePerDevice"},
    "1 worker x 2 threads, batch_wait_ms 0": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "OMP_NUM_THREADS": "2",
                                              "SEQ2SEQ_BATCH_WAIT_MS": "0"},
    "1 worker x 2 threads, batch_wait_ms 20": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "OMP_NUM_THREADS": "2",
                                               "SEQ2SEQ_BATCH_WAIT_MS": "20"},
    "1 worker x 2 threads, OMP_WAIT_POLICY=PASSIVE": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1",
                                                      "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
}
INHERITED_SETTINGS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MXNET_ENGINE_TYPE", "SAGEMAKER_MODEL_SERVER_WORKERS",
                      "SEQ2SEQ_BATCH_WAIT_MS", "SEQ2SEQ_MAX_BATCH_SENTENCES")


def sentences() -> list:
    from seq2seq.shared_data import shared_data_dir

    lines = (shared_data_dir("multi30k") / "val.en").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()]


def summarise(runs: list) -> dict:
    keys = ("requests_per_s", "p50_ms", "p99_ms", "mean_output_tokens")
    summary = {key: round(statistics.median(run[key] for run in runs), 2) for key in keys}
    summary["errors"] = sum(run["errors"] for run in runs)
    summary["requests"] = sum(run["requests"] for run in runs)
    summary["runs"] = runs
    return summary


def print_table(document: dict) -> None:
    print(f"\n{'layout':<48} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'RSS MiB':>8}")
    for name, layout in document["layouts"].items():
        for clients, level in layout["levels"].items():
            print(f"{name:<48} {clients:>7} {level['requests_per_s']:>7.2f} {level['p50_ms']:>7.0f} "
                  f"{level['p99_ms']:>7.0f} {level['errors']:>6} {max(layout.get('worker_rss_mib') or [0]):>8}")


def worker_rss_mib(server) -> list:
    """Resident memory of each worker process (MiB), from /proc."""
    sizes = []
    for pid in server.worker_pids() or []:
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        sizes.append(round(int(line.split()[1]) / 1024, 1))
        except OSError:
            continue
    return sizes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="trained model directory")
    parser.add_argument("--duration-s", type=float, default=10.0, help="measured seconds per level and round")
    parser.add_argument("--warmup-s", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layouts", help="comma-separated subset of the layout names")
    parser.add_argument("--previous", help="also serve with this commit's code (e.g. the last release)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    for name in INHERITED_SETTINGS:       # the servers get only what a layout sets (make exports some of these)
        os.environ.pop(name, None)
    chosen = {name: env for name, env in LAYOUTS.items()
              if not args.layouts or name in args.layouts.split(",")}
    scripts = {}
    if args.previous:
        name = f"previous release ({args.previous}), its defaults"
        chosen[name] = {}
        scripts[name] = export_commit(args.previous) / "container" / "serve"
        # (the earlier tree lies under build/previous-release/, see bench.previous_release)
    texts = sentences()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    runs = {name: {clients: [] for clients in CLIENTS} for name in chosen}
    with ExitStack() as stack:
        servers = {}
        for index, (name, env) in enumerate(chosen.items()):
            base = WORK_DIR / f"layout{index}" / "opt_ml"
            base.mkdir(parents=True, exist_ok=True)
            link = base / "model"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(args.model.resolve())
            servers[name] = stack.enter_context(ServeProcess(base, base.parent / "serve.log",
                                                             serve=str(scripts.get(name, "")) or None, **env))
            print(f"started: {name}", flush=True)
        for name, server in servers.items():          # warm every worker before any measurement
            run_load(server.url, texts, 8, args.warmup_s * 2, BEAM_SIZE, 10_000)
        for round_index in range(args.repeats):
            for name, server in servers.items():
                for clients in CLIENTS:
                    run_load(server.url, texts, clients, args.warmup_s, BEAM_SIZE, 10_000)
                    result = run_load(server.url, texts, clients, args.duration_s, BEAM_SIZE, 10_000)
                    runs[name][clients].append(result)
                    print(f"round {round_index + 1} {name}: {clients} clients {result['requests_per_s']:.1f} req/s "
                          f"p50 {result['p50_ms']:.0f} p99 {result['p99_ms']:.0f} errors {result['errors']}",
                          flush=True)
        layouts = {name: {"environment": chosen[name], "server": servers[name].settings(),
                          "worker_rss_mib": worker_rss_mib(servers[name]),
                          "levels": {str(c): summarise(runs[name][c]) for c in CLIENTS}} for name in servers}
    document = {"benchmark": "serve_layouts", "model": relative(args.model), "beam_size": BEAM_SIZE,
                "cpus": os.cpu_count(), "duration_s": args.duration_s, "repeats": args.repeats,
                "load_average": {"start": load_at_start, "end": [round(x, 2) for x in os.getloadavg()]},
                "layouts": layouts}
    return save_results(args.output, document, print_table)


if __name__ == "__main__":
    sys.exit(main())
