"""What a search leaves in its work folder after every trial, each file written atomically.

    results.csv, results.json   one row per trial: number, state, value, the sampled hyperparameters, checkpoints,
                                updates, wall seconds, the step at which it was pruned, capped, failure line
    best/hyperparameters.json   base + static + the best trial's values, every value a string: ready for
                                `python -m seq2seq.sagemaker_client submit --hyperparameters`
    trials.png                  the value of each trial, pruned trials at their last reported value, failed ones
                                on the axis, the best so far as a line
"""

import csv
import io
from pathlib import Path
from typing import Dict, List, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

from seq2seq.atomic_write import write_bytes, write_json, write_text
from seq2seq.search_space import ParameterRange
from seq2seq.tune.study_store import FAILURE_ATTR, INTERRUPTED_ATTR

RESULTS_CSV, RESULTS_JSON, PLOT_FILE = "results.csv", "results.json", "trials.png"
BEST_HYPERPARAMETERS = Path("best") / "hyperparameters.json"
HYPERPARAMETERS_ATTR = "hyperparameters"          # trial attribute: the sampled values, as strings
JOB_HYPERPARAMETERS_ATTR = "job_hyperparameters"  # trial attribute: everything its job ran with, as strings
OUTCOME_ATTRS = ("checkpoints", "updates", "wall_seconds", "pruned_step", "capped")
_STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                TrialState.RUNNING: "running"}


def trial_rows(study: optuna.Study) -> List[dict]:
    """One row per trial that started (queued ones are left out), in trial order."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state not in _STATE_NAMES:
            continue
        value = trial.value
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        row = {"trial": trial.number, "state": _STATE_NAMES[trial.state], "value": value,
               "hyperparameters": dict(trial.user_attrs.get(HYPERPARAMETERS_ATTR, {}))}
        row.update({name: trial.user_attrs.get(name) for name in OUTCOME_ATTRS})
        row["interrupted"] = bool(trial.user_attrs.get(INTERRUPTED_ATTR))
        row["failure"] = trial.user_attrs.get(FAILURE_ATTR)
        rows.append(row)
    return rows


def best_trial(study: optuna.Study) -> Optional[FrozenTrial]:
    """The complete trial with the best value, or None before the first complete trial."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def csv_text(rows: List[dict], names: List[str]) -> str:
    """The rows as CSV, one column per searched hyperparameter (`names`)."""
    columns = ["trial", "state", "value", *names, *OUTCOME_ATTRS, "failure"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **row["hyperparameters"]})
    return text.getvalue()


def best_hyperparameters(best: FrozenTrial) -> Dict[str, str]:
    """The hyperparameters the best trial's job ran with (base + static + its values), all strings."""
    return dict(best.user_attrs[JOB_HYPERPARAMETERS_ATTR])


def plot_png(rows: List[dict], objective: str, maximize: bool) -> bytes:
    """The trials' values (complete: dots, pruned: x at the last reported value, failed: red marks on the axis)
    and the best complete value so far, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(7, 4))
    complete = [r for r in rows if r["state"] == "complete"]
    pruned = [r for r in rows if r["state"] == "pruned" and r["value"] is not None]
    failed = [r for r in rows if r["state"] == "failed"]
    axis.plot([r["trial"] for r in complete], [r["value"] for r in complete], "o", color="tab:blue", label="complete")
    axis.plot([r["trial"] for r in pruned], [r["value"] for r in pruned], "x", color="tab:orange", label="pruned")
    values = [r["value"] for r in complete + pruned]
    floor = min(values) if values else 0.0
    axis.plot([r["trial"] for r in failed], [floor] * len(failed), "v", color="tab:red", label="failed")
    best, line = None, []
    for row in rows:
        if row["state"] == "complete":
            best = row["value"] if best is None else (max if maximize else min)(best, row["value"])
        line.append(best)
    axis.step([r["trial"] for r in rows], [float("nan") if b is None else b for b in line], where="post",
              color="tab:green", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel(objective)
    if objective.endswith("perplexity") and values and min(values) > 0:
        axis.set_yscale("log")
    axis.legend(loc="best", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    pyplot.close(figure)
    return buffer.getvalue()


def write_results(work_dir: Path, study: optuna.Study, ranges: List[ParameterRange], objective: str,
                  maximize: bool) -> List[dict]:
    """Write results.csv, results.json, best/hyperparameters.json (once a trial completed) and trials.png."""
    work_dir = Path(work_dir)
    rows = trial_rows(study)
    write_text(work_dir / RESULTS_CSV, csv_text(rows, [r.name for r in ranges]))
    best = best_trial(study)
    write_json(work_dir / RESULTS_JSON, {"objective": objective, "best_trial": best.number if best else None,
                                         "trials": rows})
    if best is not None:
        (work_dir / BEST_HYPERPARAMETERS).parent.mkdir(exist_ok=True)
        write_json(work_dir / BEST_HYPERPARAMETERS, best_hyperparameters(best))
    write_bytes(work_dir / PLOT_FILE, plot_png(rows, objective, maximize))
    return rows


def table(rows: List[dict], names: List[str], best_number: Optional[int]) -> str:
    """The trials as a printed table: number, state, value, updates, seconds, the searched values."""
    header = ["trial", "state", "value", "updates", "seconds", *names]
    lines = [header]
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.4g}"
        mark = "*" if row["trial"] == best_number else ""
        lines.append([f"{row['trial']}{mark}", row["state"] + (" (interrupted)" if row["interrupted"] else ""),
                      value, str(row["updates"] if row["updates"] is not None else "-"),
                      str(row["wall_seconds"] if row["wall_seconds"] is not None else "-"),
                      *(row["hyperparameters"].get(name, "-") for name in names)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)
