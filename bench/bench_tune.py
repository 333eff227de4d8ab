"""A local random search on Multi30k within one hour: `python -m seq2seq.tune` over the README recipe.

Raw cased Multi30k en-de through unigram subwords (8,000 pieces a side, as ``bench_quality``), the recipe
``recipes/multi30k-30min`` as the base with a per-trial budget of ``--updates`` updates (linear decay to zero at
the last one; a checkpoint every third of it, so the median pruner has something to judge), the space of
``bench/tune_multi30k/space.json``, the recipe's own values enqueued as trial 0 (the README recipe's figure at the
same per-trial budget, in the same run). The objective is the job's checkpoint BLEU on all 1,014 validation
sentences (cased sacreBLEU 13a, beam 5, full vocabulary): the number SageMaker's metric definitions read.

Writes ``bench/results/tune-multi30k.json`` (every trial, the recipe trial, the best, the wall time and the load
average) and prints the table. The search itself stays in ``--work-dir`` (study.db, results, trials.png, the
trials' models); rerunning resumes it.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_quality import prepare_raw
from bench.bench_train import machine_info
from bench.results_io import relative, save_results

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPE = REPO_ROOT / "recipes" / "multi30k-30min" / "hyperparameters.json"
SPACE = REPO_ROOT / "bench" / "tune_multi30k" / "space.json"
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "tune-multi30k.json"


def print_table(result: dict) -> None:
    names = list(json.loads(SPACE.read_text()))
    print(f"{'trial':>5} {'state':<9} {'BLEU':>6} {'updates':>7} {'min':>5}  " + " ".join(f"{n[:14]:>14}" for n in names))
    for row in result["trials"]:
        value = "" if row["value"] is None else f"{row['value']:.2f}"
        minutes = "" if row.get("wall_seconds") is None else f"{row['wall_seconds'] / 60:.1f}"
        print(f"{row['trial']:>5} {row['state']:<9} {value:>6} {str(row.get('updates') or ''):>7} {minutes:>5}  "
              + " ".join(f"{str(row['hyperparameters'].get(n, ''))[:14]:>14}" for n in names))
    print(f"search wall time {result['wall_minutes']:.1f} min; trials finished within 60 min: "
          f"{result['trials_within_60_minutes']}; recipe trial {result['recipe_trial_bleu']}; best "
          f"{result['best_trial_bleu']} (trial {result['best_trial']})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--updates", type=int, default=900, help="updates a trial (max_num_batches)")
    parser.add_argument("--trial-minutes", type=float, default=9.0, help="wall-time cap of one trial")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work-dir", type=Path, default=REPO_ROOT / "build" / "tune" / "multi30k")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    data = prepare_raw("unigram", 8000, False)
    load_before = os.getloadavg()
    start = time.time()
    command = [sys.executable, "-m", "seq2seq.tune", "--space", str(SPACE), "--data", str(data.rec_dir),
               "--hyperparameters", str(RECIPE), "--hp", f"max_num_batches={args.updates}",
               f"checkpoint_frequency_num_batches={args.updates // 3}", "--enqueue", str(RECIPE),
               "--trials", str(args.trials), "--trial-minutes", str(args.trial_minutes), "--threads", "2",
               "--seed", str(args.seed), "--work-dir", str(args.work_dir)]
    print(" ".join(command[1:]), flush=True)
    code = subprocess.call(command, cwd=REPO_ROOT)
    wall = time.time() - start
    rows = json.loads((args.work_dir / "results.json").read_text())
    rows = rows["trials"] if isinstance(rows, dict) else rows
    finished, elapsed = 0, 0.0
    for row in rows:
        elapsed += row.get("wall_seconds") or 0.0
        finished += elapsed <= 3600
    complete = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    best = max(complete, key=lambda r: r["value"]) if complete else None
    result = {"benchmark": "tune_multi30k", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine_info(), "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()], "exit_status": code,
              "command": " ".join(command[1:]).replace(str(REPO_ROOT) + "/", ""),
              "space": json.loads(SPACE.read_text()), "base": relative(RECIPE),
              "per_trial_budget": {"max_num_batches": args.updates, "trial_minutes_cap": args.trial_minutes},
              "objective": "validation:bleu (the job's checkpoint BLEU: all 1,014 validation sentences, cased "
                           "sacreBLEU 13a, beam 5, full vocabulary)",
              "wall_minutes": round(wall / 60, 1), "trials_within_60_minutes": finished,
              "trials": rows, "recipe_trial_bleu": rows[0]["value"] if rows else None,
              "best_trial": best["trial"] if best else None, "best_trial_bleu": best["value"] if best else None,
              "work_dir": relative(args.work_dir)}
    return save_results(args.output, result, print_table)


if __name__ == "__main__":
    sys.exit(main())
