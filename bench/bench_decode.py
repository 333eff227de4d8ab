"""Decoding benchmark: the one-program beam search against the step-by-step search it replaced, same model.

1. One sentence at a time through `Translator` (the first `--single` Multi30k validation sentences, beam 5):
   median and p90 latency of `translate_text([sentence])`.
2. The whole validation set (1,014 sentences, batches of 32, beam 5): sentences/s and output tokens/s, the
   median of `--repeats` passes. The outputs of both searches must be identical (ids and, within 1e-4,
   scores); the benchmark reports the number of differences.

The reference is `bench.reference_search.reference_beam_search`, the search as it was before the one-program
step (about twenty imperative calls and several host synchronisations a step). Both run in this process, one
after the other, on the same loaded model, with the OpenMP settings of the environment (`make` sets
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


def single_sentence_latency(translator: Translator, sentences, options) -> dict:
    translator.translate_text(sentences[:3], options)                       # build the programs
    latencies = []
    for sentence in sentences:
        start = time.perf_counter()
        translator.translate_text([sentence], options)
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    return {"sentences": len(sentences), "median_ms": round(1000 * statistics.median(latencies), 2),
            "p90_ms": round(1000 * latencies[int(0.9 * (len(latencies) - 1))], 2)}


def batch_decoding(translator: Translator, sentences, options, repeats: int):
    seconds, translations = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        translations = translator.translate_text(sentences, options)
        seconds.append(time.perf_counter() - start)
    elapsed = statistics.median(seconds)
    tokens = sum(len(t.target_ids) for t in translations)
    return {"sentences": len(sentences), "seconds_median": round(elapsed, 3), "seconds_all": [round(s, 3) for s in seconds],
            "sentences_per_s": round(len(sentences) / elapsed, 2), "output_tokens_per_s": round(tokens / elapsed, 1),
            "mean_output_tokens": round(tokens / len(sentences), 2)}, translations


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
    results, outputs = {}, {}
    for name, search in SEARCHES.items():
        translator = Translator.load(str(args.model))
        translator.search = search
        translator.batch_sentences = args.batch_sentences
        sentences = validation_sentences(translator.subword is not None)
        single = single_sentence_latency(translator, sentences[:args.single], options)
        batch, outputs[name] = batch_decoding(translator, sentences, options, args.repeats)
        results[name] = {"single_sentence": single, "validation_set": batch,
                         "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    new, old = results["one_program"], results["stepwise_reference"]
    summary = {
        "single_sentence_median_ms": new["single_sentence"]["median_ms"],
        "single_sentence_speedup": round(old["single_sentence"]["median_ms"] / new["single_sentence"]["median_ms"], 2),
        "validation_sentences_per_s": new["validation_set"]["sentences_per_s"],
        "validation_speedup": round(new["validation_set"]["sentences_per_s"]
                                    / old["validation_set"]["sentences_per_s"], 2),
        "outputs_differing": differences(outputs["one_program"], outputs["stepwise_reference"]),
    }
    document = {"benchmark": "decode", "model": relative(args.model), "beam_size": args.beam_size,
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
