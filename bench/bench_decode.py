"""Decoding benchmark: the one-program beam search against the step-by-step search it replaced, same model.

1. One sentence at a time through `Translator` (the first `--single` Multi30k validation sentences, beam 5):
   median and p90 latency of `translate_text([sentence])`, after an unmeasured pass, the searches
   interleaved sentence by sentence.
2. The whole validation set (1,014 sentences, batches of 32, beam 5): sentences/s and output tokens/s, the
   median of `--repeats` passes (alternating between the searches). The outputs of both searches must be identical (ids and, within 1e-4,
   scores); the benchmark reports the number of differences.

The reference is `bench.reference_search.reference_beam_search`, the search as it was before the one-program
step (about twenty imperative calls and several host synchronisations a step). Both run in this process,
each on its own copy of the model, with the OpenMP settings of the environment (`make` sets
OMP_NUM_THREADS=2, OMP_WAIT_POLICY=PASSIVE). Model loading is not timed.

Usage: python -m bench.bench_decode --model DIR [--single 100] [--repeats 3] [--output bench/results/decode.json]
The model directory is a training job's /opt/ml/model (word-level: whitespace tokens of the lower-cased
validation text; subword: raw text).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.reference_search import reference_beam_search  # noqa: E402
from bench.results_io import relative, write_json_atomically  # noqa: E402
from seq2seq.inference.search import beam_search  # noqa: E402
from seq2seq.inference.translator import DecodeOptions, Translator  # noqa: E402
from seq2seq.shared_data import shared_data_dir  # noqa: E402

RESULTS_PATH = REPO_ROOT / "bench" / "results" / "decode.json"
SEARCHES = {"one_program": beam_search, "stepwise_reference": reference_beam_search}


def validation_sentences(subword: bool):
    lines = (shared_data_dir("multi30k") / "val.en").read_text(encoding="utf-8").splitlines()
    return lines if subword else [line.lower() for line in lines]


def single_sentence_latencies(translators: dict, sentences, options) -> dict:
    """Each sentence alone through each translator, interleaved (one sentence through every search, then the
    next), after a full unmeasured pass: both searches see the same warm memory pool and caches."""
    for translator in translators.values():
        for sentence in sentences:
            translator.translate_text([sentence], options)
    latencies = {name: [] for name in translators}
    for sentence in sentences:
        for name, translator in translators.items():
            start = time.perf_counter()
            translator.translate_text([sentence], options)
            latencies[name].append(time.perf_counter() - start)
    summary = {}
    for name, values in latencies.items():
        values.sort()
        summary[name] = {"sentences": len(values), "median_ms": round(1000 * statistics.median(values), 2),
                         "p90_ms": round(1000 * values[int(0.9 * (len(values) - 1))], 2)}
    return summary


def batch_decoding(translators: dict, sentences, options, repeats: int):
    """Whole validation set, passes alternating between the searches; medians over `repeats` each."""
    seconds = {name: [] for name in translators}
    outputs = {}
    for _ in range(repeats):
        for name, translator in translators.items():
            start = time.perf_counter()
            outputs[name] = translator.translate_text(sentences, options)
            seconds[name].append(time.perf_counter() - start)
    results = {}
    for name, values in seconds.items():
        elapsed = statistics.median(values)
        tokens = sum(len(t.target_ids) for t in outputs[name])
        results[name] = {"sentences": len(sentences), "seconds_median": round(elapsed, 3),
                         "seconds_all": [round(v, 3) for v in values],
                         "sentences_per_s": round(len(sentences) / elapsed, 2),
                         "output_tokens_per_s": round(tokens / elapsed, 1),
                         "mean_output_tokens": round(tokens / len(sentences), 2)}
    return results, outputs


def differences(first, second) -> int:
    return sum(a.target_ids != b.target_ids or abs(a.score - b.score) > 1e-4 * max(1.0, abs(a.score))
               for a, b in zip(first, second))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="trained model directory")
    parser.add_argument("--single", type=int, default=100, help="sentences decoded one at a time")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the validation set per search")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--batch-sentences", type=int, default=32)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    options = DecodeOptions(beam_size=args.beam_size)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    translators = {}
    for name, search in SEARCHES.items():
        translator = Translator.load(str(args.model))
        translator.search = search
        translator.batch_sentences = args.batch_sentences
        translators[name] = translator
    sentences = validation_sentences(translators["one_program"].subword is not None)
    single = single_sentence_latencies(translators, sentences[:args.single], options)
    batch, outputs = batch_decoding(translators, sentences, options, args.repeats)
    results = {name: {"single_sentence": single[name], "validation_set": batch[name]} for name in translators}
    new, old = results["one_program"], results["stepwise_reference"]
    summary = {
        "single_sentence_median_ms": new["single_sentence"]["median_ms"],
        "single_sentence_speedup": round(old["single_sentence"]["median_ms"] / new["single_sentence"]["median_ms"], 2),
        "validation_sentences_per_s": new["validation_set"]["sentences_per_s"],
        "validation_speedup": round(new["validation_set"]["sentences_per_s"]
                                    / old["validation_set"]["sentences_per_s"], 2),
        "outputs_differing": differences(outputs["one_program"], outputs["stepwise_reference"]),
    }
    document = {"benchmark": "decode", "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "model": relative(args.model), "beam_size": args.beam_size,
                "batch_sentences": args.batch_sentences,
                "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                         "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                         "load_average_at_start": load_at_start},
                "results": results, "summary": summary}
    write_json_atomically(args.output, document)
    print(f"{'search':<20} {'1 sentence p50':>15} {'p90':>9} {'val sent/s':>11} {'out tok/s':>10}")
    for name, result in results.items():
        single, batch = result["single_sentence"], result["validation_set"]
        print(f"{name:<20} {single['median_ms']:>12.1f} ms {single['p90_ms']:>6.1f} ms "
              f"{batch['sentences_per_s']:>11.2f} {batch['output_tokens_per_s']:>10.1f}")
    print(json.dumps(summary))
    return document


if __name__ == "__main__":
    main()
