"""The BLEU effect of checkpoint averaging (`average_checkpoints`) on Multi30k validation.

Reads a finished ``bench_quality`` run trained with ``average_checkpoints=N`` (its SageMaker tree keeps the
parameters of the last N + 1 checkpoints under ``checkpoints/averaging/``) and scores, with the same decoding as
``bench_quality`` (raw cased text, sacreBLEU 13a, beam 5, all 1,014 validation sentences): the best checkpoint as
the job exports it without averaging, and the mean of the last n kept checkpoints for every n from 1 (the last
checkpoint alone) to the number kept. Results go to ``bench/results/averaging.json``; a table is printed.

Usage: ``python -m bench.bench_averaging --work-dir build/bench/averaging`` after e.g. ``python -m
bench.bench_quality --recipe multi30k-30min --work-dir build/bench/averaging --fresh --hp average_checkpoints=4
checkpoint_frequency_num_batches=325``.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import mxnet as mx

from bench.bench_quality import evaluate_raw, prepare_raw
from bench.bench_train import machine_info
from bench.results_io import relative, save_results
from seq2seq.constants import MODEL_PARAMS_FILE
from seq2seq.training import checkpoint_averaging as averaging
from seq2seq.training import training_state as ts

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "averaging.json"


def score(model_dir: Path, parameters: dict, data, limit) -> float:
    """Cased sacreBLEU (beam 5) of the model directory `model_dir` with `parameters` in place of its own."""
    with tempfile.TemporaryDirectory() as directory:
        candidate = Path(directory) / "model"
        shutil.copytree(model_dir, candidate)
        mx.nd.save(str(candidate / MODEL_PARAMS_FILE), parameters)
        return evaluate_raw(candidate, data, beams=(5,), limit=limit)["beam5"]["sacrebleu_cased"]["score"]


def print_table(result: dict) -> None:
    print(f"{'exported parameters':<40} {'checkpoints':<16} {'updates':<24} {'cased BLEU':>10}")
    for row in result["rows"]:
        print(f"{row['parameters']:<40} {str(row['checkpoints']):<16} {str(row['updates']):<24} {row['bleu']:>10.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="the bench_quality work directory")
    parser.add_argument("--eval-sentences", type=int, help="score only the first N validation sentences")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    base = args.work_dir / "opt_ml"
    checkpoint_dir = str(base / "checkpoints")
    state = ts.load_training_state(checkpoint_dir)
    kept = averaging.kept_checkpoints(checkpoint_dir)
    if state is None or not kept:
        print(f"{args.work_dir}: no training state or no kept checkpoints (train with average_checkpoints >= 2)",
              file=sys.stderr)
        return 1
    hyperparameters = json.loads((base / "input" / "config" / "hyperparameters.json").read_text())
    data = prepare_raw("unigram", 8000, False)
    updates = {record["checkpoint"]: record["updates"] for record in state.history}
    checkpoint_bleu = {record["checkpoint"]: record.get("validation_bleu") for record in state.history}
    model_dir = base / "model"
    rows = []
    best = {name: value for name, value in mx.nd.load(ts.best_params_path(checkpoint_dir)).items()}
    rows.append({"parameters": f"best checkpoint ({state.best_checkpoint})", "checkpoints": [state.best_checkpoint],
                 "updates": [updates.get(state.best_checkpoint)], "bleu": score(model_dir, best, data,
                                                                                args.eval_sentences)})
    last = state.num_checkpoints
    for count in range(1, len(kept) + 1):
        numbers = averaging.checkpoints_to_average(checkpoint_dir, last, count)
        parameters = averaging.average_parameter_files([averaging.kept_path(checkpoint_dir, n) for n in numbers])
        label = "last checkpoint" if count == 1 else f"mean of the last {count}"
        rows.append({"parameters": label, "checkpoints": numbers, "updates": [updates.get(n) for n in numbers],
                     "bleu": score(model_dir, parameters, data, args.eval_sentences)})
        print(f"  {label}: {rows[-1]['bleu']:.2f}", flush=True)
    result = {"benchmark": "averaging", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine_info(), "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "work_dir": relative(args.work_dir), "hyperparameters": hyperparameters,
              "evaluation": f"multi30k en-de val ({args.eval_sentences or 1014}), raw cased text, sacreBLEU 13a, "
                            "beam 5",
              "checkpoint_bleu_during_training": checkpoint_bleu, "rows": rows}
    return save_results(args.output, result, print_table)


if __name__ == "__main__":
    sys.exit(main())
