"""The decoding and serving targets, checked against the results of one decoding run and one serving run.

Reads a `bench.bench_decode` result (with `--previous`, so that the previous release ran in the same run) and a
`bench.serve_layouts` result (with `--previous`), and says for each target what was measured, against what, and
whether it is met. The reference of the ratios is the previous release measured in the same run; the serving
ratio is also given against the figure the targets were set from (`ISSUE_REQUESTS_PER_S`).

Usage: python -m bench.decode_targets [--decode bench/results/decode-grouped.json]
       [--serve bench/results/serve-grouped.json] [--output bench/results/decode-targets.json]
"""

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.results_io import relative, save_results  # noqa: E402

SINGLE_SENTENCE_MS = 40.0          # one sentence through Translator, median, at most
BATCH_SPEEDUP = 3.0                # validation set in batches of 32 against the previous release, at least
SERVE_SPEEDUP = 2.5                # 8 clients' requests/s against the previous release, at least
ISSUE_REQUESTS_PER_S = 24.0        # 8 clients' requests/s of the release the targets were set against
SERVE_P99_MS = 150.0               # 8 clients, at most
BLEU_LOSS = 0.2                    # shortlist against the whole vocabulary, at most
COVERAGE = 0.995                   # the shortlist's share of the full search's output tokens, at least
SHIPPED_LAYOUT = "shipped defaults"


def _target(name: str, measured, goal: str, met: bool, reference=None) -> dict:
    return {"target": name, "measured": measured, "goal": goal, "reference": reference, "met": bool(met)}


def decoding_targets(decode: dict) -> list:
    """The targets of a bench_decode result (`summary` and `results`)."""
    summary, results = decode["summary"], decode["results"]
    reference = "previous_release" if "previous_release" in results else "previous"
    speedup = summary.get("validation_speedup_vs_previous_release", summary["validation_speedup_vs_previous"])
    targets = [
        _target("one sentence, median ms", summary["single_sentence_median_ms"], f"<= {SINGLE_SENTENCE_MS:g}",
                summary["single_sentence_median_ms"] <= SINGLE_SENTENCE_MS,
                results[reference]["single_sentence"]["median_ms"]),
        _target(f"batches of 32, sentences/s against the {reference.replace('_', ' ')}", speedup,
                f">= {BATCH_SPEEDUP:g}x", speedup >= BATCH_SPEEDUP,
                results[reference]["validation_set"]["sentences_per_s"]),
        _target("BLEU, shortlist minus whole vocabulary", summary["bleu_shortlist_minus_full"],
                f">= -{BLEU_LOSS:g}", summary["bleu_shortlist_minus_full"] >= -BLEU_LOSS,
                results["full"]["bleu"]),
        _target("coverage, one sentence at a time", summary["shortlist_coverage_of_full_output"],
                f">= {COVERAGE:g}", summary["shortlist_coverage_of_full_output"] >= COVERAGE),
    ]
    if "batch_shortlist_coverage_of_full_output" in summary:
        coverage = summary["batch_shortlist_coverage_of_full_output"]
        targets.append(_target("coverage, batches of 32", coverage, f">= {COVERAGE:g}", coverage >= COVERAGE))
    if "output_tokens_per_s_vs_onmt" in summary:
        ratio = summary["output_tokens_per_s_vs_onmt"]
        targets.append(_target("output tokens/s against onmt_translate", ratio, "> 1x", ratio > 1.0,
                               results["onmt_translate"]["validation_set"]["output_tokens_per_s"]))
    return targets


def serving_targets(serve: dict) -> list:
    """The eight-client targets of a serve_layouts result, for the shipped layout."""
    layouts = serve["layouts"]
    shipped = layouts[SHIPPED_LAYOUT]
    eight = shipped["levels"]["8"]
    release = next((layout for name, layout in layouts.items() if name.startswith("previous release")), None)
    targets = [_target("8 clients, requests/s against the issue's figure", round(eight["requests_per_s"]
                                                                                  / ISSUE_REQUESTS_PER_S, 2),
                       f">= {SERVE_SPEEDUP:g}x", eight["requests_per_s"] >= SERVE_SPEEDUP * ISSUE_REQUESTS_PER_S,
                       ISSUE_REQUESTS_PER_S)]
    if release is not None:
        release_rate = release["levels"]["8"]["requests_per_s"]
        targets.append(_target("8 clients, requests/s against the previous release", round(
            eight["requests_per_s"] / release_rate, 2), f">= {SERVE_SPEEDUP:g}x",
            eight["requests_per_s"] >= SERVE_SPEEDUP * release_rate, release_rate))
    targets += [
        _target("8 clients, p99 ms", eight["p99_ms"], f"<= {SERVE_P99_MS:g}", eight["p99_ms"] <= SERVE_P99_MS),
        _target("8 clients, errors", eight["errors"], "0", eight["errors"] == 0),
    ]
    if release is not None:
        rss, release_rss = max(shipped["worker_rss_mib"]), max(release["worker_rss_mib"])
        targets.append(_target("worker peak RSS MiB", rss, "<= the previous release's", rss <= release_rss,
                               release_rss))
    return targets


def print_table(document: dict) -> None:
    print(f"{'target':<56} {'measured':>10} {'goal':>24} {'reference':>10}  met")
    for row in document["targets"]:
        reference = "" if row["reference"] is None else f"{row['reference']:g}"
        print(f"{row['target']:<56} {row['measured']:>10g} {row['goal']:>24} {reference:>10}  "
              f"{'yes' if row['met'] else 'NO'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decode", type=Path, default=REPO_ROOT / "bench" / "results" / "decode-grouped.json")
    parser.add_argument("--serve", type=Path, default=REPO_ROOT / "bench" / "results" / "serve-grouped.json")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench" / "results" / "decode-targets.json")
    args = parser.parse_args(argv)
    decode, serve = (json.loads(path.read_text(encoding="utf-8")) for path in (args.decode, args.serve))
    document = {"benchmark": "decode_targets", "decode": relative(args.decode), "serve": relative(args.serve),
                "model": decode.get("model"), "targets": decoding_targets(decode) + serving_targets(serve)}
    return save_results(args.output, document, print_table)


if __name__ == "__main__":
    sys.exit(main())
