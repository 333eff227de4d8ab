"""Where a beam step's time goes: MXNet's profiler (aggregate statistics) over decoding, per beam step.

Two workloads, beam 5 by default: the first `--sentences` Multi30k validation sentences one at a time (the
endpoint's case), and one batch of the first `--batch` sentences (translate's and checkpoint BLEU's case).
For each, every operator's calls and total milliseconds per beam step, and the time outside operators: wall
time under the profiler minus the operators' total (Python, the engine's scheduling, host synchronisation).
The profiler inflates wall time; compare tables taken the same way. Beam steps are counted from the `topk`
calls (one per step in both searches).

`--search previous` profiles the search as it shipped before the host-side selection and the shortlist
(`bench/one_program_search.py`); `--no-shortlist` decodes over the whole vocabulary. The environment is the
product's own (`seq2seq.runtime_env`), as `translate` and `serve` set it.

Usage: python -m bench.profile_decode --model DIR [--label after] [--search current|previous] [--no-shortlist]
Writes bench/results/profile-decode-<label>.json and prints the top operators of each workload.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from seq2seq import runtime_env  # noqa: E402

runtime_env.apply()

import mxnet as mx  # noqa: E402

from bench.one_program_search import beam_search as previous_search  # noqa: E402
from bench.results_io import relative, write_json_atomically  # noqa: E402
from seq2seq.inference.translator import DecodeOptions, Translator  # noqa: E402
from seq2seq.shared_data import shared_data_dir  # noqa: E402

RESULTS_DIR = REPO_ROOT / "bench" / "results"
TRACE_PATH = REPO_ROOT / "build" / "bench" / "profile-decode-trace.json"   # MXNet's own trace (not kept)
STEP_OPERATOR = "topk"
TOP = 10


def profile(run) -> dict:
    """Run `run()` under the aggregate profiler -> {'wall_ms', 'operators': {name: {count, total_ms}}}."""
    # MXNet writes its trace file at exit by replacing the file: never point it at a device such as /dev/null.
    TRACE_PATH.parent.mkdir(parents=True, exist_ok=True)
    mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename=str(TRACE_PATH))
    mx.profiler.dumps(reset=True)
    mx.profiler.set_state("run")
    start = time.perf_counter()
    run()
    mx.nd.waitall()
    wall_ms = 1000 * (time.perf_counter() - start)
    mx.profiler.set_state("stop")
    stats = json.loads(mx.profiler.dumps(format="json", reset=True))
    operators = {name: {"count": value["Count"], "total_ms": value["Total"]}
                 for name, value in stats["Time"].get("operator", {}).items()}
    return {"wall_ms": wall_ms, "operators": operators}


def per_step(profiled: dict, sentences: int) -> dict:
    """Operator calls and ms per beam step, the time outside operators, sorted by time."""
    operators = profiled["operators"]
    steps = operators.get(STEP_OPERATOR, {}).get("count", 0) or 1
    inside = sum(v["total_ms"] for v in operators.values())
    rows = sorted(({"operator": name, "calls_per_step": round(v["count"] / steps, 2),
                    "ms_per_step": round(v["total_ms"] / steps, 4)} for name, v in operators.items()),
                  key=lambda r: -r["ms_per_step"])
    outside = max(0.0, profiled["wall_ms"] - inside)
    return {"sentences": sentences, "beam_steps": steps, "wall_ms": round(profiled["wall_ms"], 1),
            "wall_ms_per_step": round(profiled["wall_ms"] / steps, 3),
            "operator_calls_per_step": round(sum(v["count"] for v in operators.values()) / steps, 1),
            "operator_ms_per_step": round(inside / steps, 3),
            "outside_operators_ms_per_step": round(outside / steps, 3), "operators": rows}


def print_table(title: str, result: dict) -> None:
    print(f"\n{title}: {result['sentences']} sentence(s), {result['beam_steps']} beam steps, "
          f"{result['wall_ms_per_step']:.2f} ms a step under the profiler ({result['operator_calls_per_step']} "
          f"operator calls, {result['operator_ms_per_step']:.2f} ms in operators, "
          f"{result['outside_operators_ms_per_step']:.2f} ms outside)")
    print(f"  {'operator':<28} {'calls/step':>10} {'ms/step':>9}")
    for row in result["operators"][:TOP]:
        print(f"  {row['operator']:<28} {row['calls_per_step']:>10.2f} {row['ms_per_step']:>9.3f}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="trained model directory (raw-text model)")
    parser.add_argument("--label", default="after", help="results go to profile-decode-<label>.json")
    parser.add_argument("--search", choices=("current", "previous"), default="current")
    parser.add_argument("--no-shortlist", action="store_true", help="score the whole vocabulary")
    parser.add_argument("--sentences", type=int, default=20, help="sentences decoded one at a time")
    parser.add_argument("--batch", type=int, default=32, help="sentences of the batch workload")
    parser.add_argument("--beam-size", type=int, default=5)
    args = parser.parse_args(argv)
    translator = Translator.load(str(args.model))
    if args.search == "previous":
        translator.search = previous_search
    options = DecodeOptions(beam_size=args.beam_size, shortlist=not args.no_shortlist and args.search == "current")
    lines = (shared_data_dir("multi30k") / "val.en").read_text(encoding="utf-8").splitlines()
    singles, batch = lines[:args.sentences], lines[:args.batch]
    translator.translate_text(batch, options)                                 # build every program first
    for sentence in singles:
        translator.translate_text([sentence], options)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    single = per_step(profile(lambda: [translator.translate_text([s], options) for s in singles]), len(singles))
    batched = per_step(profile(lambda: translator.translate_text(batch, options)), len(batch))
    document = {"benchmark": "profile_decode", "label": args.label, "model": relative(args.model),
                "search": args.search, "shortlist": options.shortlist, "beam_size": args.beam_size,
                "environment": runtime_env.describe(), "load_average_at_start": load_at_start,
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "one_sentence": single, "batch": batched}
    output = RESULTS_DIR / f"profile-decode-{args.label}.json"
    write_json_atomically(output, document)
    print_table("one sentence at a time", single)
    print_table(f"one batch of {args.batch}", batched)
    print(f"results: {relative(output)}")
    return document


if __name__ == "__main__":
    main()
