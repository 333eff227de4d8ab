"""Decoding benchmark in the environment the product ships (`seq2seq.runtime_env`, as `translate` and `serve`
set it): the shipped search with and without its shortlist, the search it replaced, and OpenNMT-py.

Paths, each its own `Translator` over the same model directory:
  shortlist  the shipped search with the model's shortlist (the default)
  full       the shipped search over the whole vocabulary (`shortlist: false`)
  previous   the search as it shipped before (bench/one_program_search.py: decoder step, log-softmax, top-k
             over beam × vocabulary and reordering in one graph); the reference of the speed-up
  shortlist_renormalised  with `--renormalised`: the shortlist normalised over its candidates only
             (`rest_rank=0`), without the estimate of the other ids' logits; what the normalisation costs
1. One sentence at a time through `Translator` (the first `--single` Multi30k validation sentences): each
   sentence through every path in turn, after an unmeasured pass; median and p90 latency.
2. The whole validation set (1,014 sentences, batches of 32): passes alternating between the paths and
   `onmt_translate` (the peer: its own model of the same size, trained once and cached under build/,
   Moses-tokenised lower-cased words, same beam, batch and threads), `--repeats` each; sentences/s and output
   tokens/s (tokens + </s>), medians.
3. Quality: sacreBLEU (cased, 13a) of each path against the raw references; the shortlist's coverage (the
   share of the full search's output tokens that the candidates scored hold: each sentence alone, as
   one-sentence requests are decoded, and in the batches of the validation pass); the number of outputs of
   `full` that differ from `previous` (should be 0).
`--sweep`: BLEU, coverage, candidates and speed over a grid of shortlist_k × shortlist_frequent, from a
table estimated here on the training pairs (`--train-rec`), to choose the defaults.
`--search-options`: BLEU with n-gram blocking and with the coverage penalty (each alone), and how many outputs
repeat a trigram.

Usage: python -m bench.bench_decode --model DIR [--single 100] [--repeats 3] [--skip-peer] [--renormalised]
       [--sweep | --search-options]
Results: bench/results/decode.json (decode-shortlist-sweep.json, decode-search-options.json).
"""

import argparse
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from seq2seq import runtime_env  # noqa: E402

ENVIRONMENT = runtime_env.apply()

import numpy as np  # noqa: E402
import sacrebleu  # noqa: E402

from bench import onmt_peer, previous_release  # noqa: E402
from bench.one_program_search import beam_search as previous_search  # noqa: E402
from bench.results_io import relative, save_results  # noqa: E402
from seq2seq.inference.search import beam_search  # noqa: E402
from seq2seq.inference.translator import DecodeOptions, Translator, length_sorted_batches  # noqa: E402
from seq2seq.shared_data import shared_data_dir  # noqa: E402

RESULTS_PATH = REPO_ROOT / "bench" / "results" / "decode.json"
SWEEP_PATH = REPO_ROOT / "bench" / "results" / "decode-shortlist-sweep.json"
DEFAULT_TRAIN_REC = REPO_ROOT / "build" / "multi30k" / "raw-unigram-8000" / "train.rec"
PATHS = ("shortlist", "full", "previous")
SWEEP_K = (20, 50, 100)
SWEEP_FREQUENT = (300, 1000, 2000)
SEARCH_OPTION_GRID = ((0, 0.0), (2, 0.0), (3, 0.0), (4, 0.0), (0, 0.2), (0, 0.5), (0, 1.0))
OPTIONS_PATH = REPO_ROOT / "bench" / "results" / "decode-search-options.json"


def validation_text():
    data = shared_data_dir("multi30k")
    return ((data / "val.en").read_text(encoding="utf-8").splitlines(),
            (data / "val.de").read_text(encoding="utf-8").splitlines())


def load_paths(model: Path, beam_size: int, batch_sentences: int, renormalised: bool = False) -> dict:
    """name -> (translator, options) for each path; `renormalised` adds the shortlist normalised over its
    candidates only (`rest_rank=0`, Sockeye 1.x's way) as "shortlist_renormalised"."""
    paths = {}
    for name in PATHS + (("shortlist_renormalised",) if renormalised else ()):
        translator = Translator.load(str(model))
        translator.batch_sentences = batch_sentences
        if name == "previous":
            translator.search = previous_search
        if name == "shortlist_renormalised":
            translator.search = functools.partial(beam_search, rest_rank=0)
        paths[name] = (translator, DecodeOptions(beam_size=beam_size, shortlist=name.startswith("shortlist")))
    if paths["shortlist"][0].shortlist is None:
        raise SystemExit(f"{model} has no shortlist.npz: train it with this version (shortlist_k > 0)")
    return paths


def single_sentence_latencies(paths: dict, sentences, rounds: int, external: dict) -> dict:
    """Each sentence through each path in turn, after a full unmeasured pass; then each `external` callable
    (seconds per sentence of its own pass over `sentences`); `rounds` times. Median and p90 in ms."""
    for translator, options in paths.values():
        for sentence in sentences:
            translator.translate_text([sentence], options)
    latencies = {name: [] for name in list(paths) + list(external)}
    for _ in range(rounds):
        for sentence in sentences:
            for name, (translator, options) in paths.items():
                start = time.perf_counter()
                translator.translate_text([sentence], options)
                latencies[name].append(time.perf_counter() - start)
        for name, measure in external.items():
            latencies[name] += measure(sentences)
    return {name: summarise_latencies(values) for name, values in latencies.items()}


def summarise_latencies(values) -> dict:
    values = sorted(values)
    return {"sentences": len(values), "median_ms": round(1000 * statistics.median(values), 2),
            "p90_ms": round(1000 * values[int(0.9 * (len(values) - 1))], 2)}


def validation_passes(paths: dict, sentences, repeats: int, peer, previous_release) -> tuple:
    """Passes over the validation set alternating between the paths, the previous release and the peer; medians
    of `repeats` each. Returns (results by name, the last outputs of our paths)."""
    seconds = {name: [] for name in paths}
    peer_runs, release_runs, outputs = [], [], {}
    for _ in range(repeats):
        for name, (translator, options) in paths.items():
            start = time.perf_counter()
            outputs[name] = translator.translate_text(sentences, options)
            seconds[name].append(time.perf_counter() - start)
        if previous_release is not None:
            release_runs.append(previous_release())
        if peer is not None:
            peer_runs.append(peer())
    results = {}
    for name, values in seconds.items():
        elapsed = statistics.median(values)
        tokens = sum(len(t.target_ids) + 1 for t in outputs[name])
        results[name] = {"sentences": len(sentences), "seconds_median": round(elapsed, 3),
                         "seconds_all": [round(v, 3) for v in values],
                         "sentences_per_s": round(len(sentences) / elapsed, 2),
                         "output_tokens_per_s": round(tokens / elapsed, 1),
                         "mean_output_tokens": round(tokens / len(sentences), 2)}
    if release_runs:
        elapsed = statistics.median(run["seconds"] for run in release_runs)
        tokens = sum(len(line.split()) + 1 for line in release_runs[-1]["outputs"])
        results["previous_release"] = {
            "sentences": len(sentences), "seconds_median": round(elapsed, 3),
            "seconds_all": [run["seconds"] for run in release_runs],
            "sentences_per_s": round(len(sentences) / elapsed, 2), "output_tokens_per_s": round(tokens / elapsed, 1),
            "tokens": "detokenised words + </s> (its translate prints text, not pieces)",
            "mean_output_tokens": round(tokens / len(sentences), 2), "outputs": release_runs[-1]["outputs"]}
    if peer_runs:
        rates = [run["output_tokens_per_s"] for run in peer_runs]
        middle = peer_runs[rates.index(statistics.median_low(rates))]
        results["onmt_translate"] = {
            "sentences": middle["sentences"], "seconds_median": round(statistics.median(
                run["translate_s"] for run in peer_runs), 3),
            "seconds_all": [round(run["translate_s"], 3) for run in peer_runs],
            "sentences_per_s": round(statistics.median(run["sentences_per_s"] for run in peer_runs), 2),
            "output_tokens_per_s": round(statistics.median(rates), 1),
            "mean_output_tokens": round(middle["output_tokens"] / middle["sentences"], 2),
            "tokens": "Moses-tokenised lower-cased words + </s> (its own model and vocabulary)",
            "peak_rss_mib": middle["peak_rss_mib"]}
    return results, outputs


def bleu(translations, references) -> float:
    return round(sacrebleu.corpus_bleu([t.text for t in translations], [references]).score, 2)


def differing(first, second) -> int:
    return sum(a.target_ids != b.target_ids or abs(a.score - b.score) > 1e-4 * max(1.0, abs(a.score))
               for a, b in zip(first, second))


def source_ids(translator: Translator, sentences):
    return [translator.subword.source.encode_text(s)[0] for s in sentences]


def peer_runner(beam_size: int, batch_sentences: int):
    """A callable timing one onmt_translate pass over the validation set (the model trained on first use)."""
    data = onmt_peer.multi30k()
    threads = int(ENVIRONMENT["OMP_NUM_THREADS"])
    model = onmt_peer.cached_model(data, threads=threads)
    return lambda: onmt_peer.onmt_translate_speed(model, data.val_source, beam_size, batch_sentences, threads,
                                                  wait_policy=None)


def sweep(model: Path, train_rec: Path, sentences, references, beam_size: int, batch_sentences: int) -> dict:
    """BLEU, coverage, mean candidates per batch and sentences/s for each (k, frequent) of the grid."""
    from seq2seq.data.recordio_codec import read_pairs
    from seq2seq.inference.shortlist import Shortlist, target_frequency_order
    from seq2seq.lexicon import estimate_lexical_table

    translator = Translator.load(str(model))
    translator.batch_sentences = batch_sentences
    pairs = list(read_pairs(str(train_rec)))
    train_sources, train_targets = [p[0] for p in pairs], [p[1] for p in pairs]
    source_size, target_size = len(translator.source_vocab), len(translator.target_vocab)
    table = estimate_lexical_table(train_sources, train_targets, source_size, target_size)
    stored = Shortlist(table.top_translations(source_size, 100), target_frequency_order(train_targets, target_size),
                       100, 0)
    full_options = DecodeOptions(beam_size=beam_size, shortlist=False)
    start = time.perf_counter()
    full = translator.translate_text(sentences, full_options)
    full_seconds = time.perf_counter() - start
    ids = source_ids(translator, sentences)
    rows = [{"k": None, "frequent": None, "bleu": bleu(full, references), "coverage": 1.0,
             "mean_candidates": target_size, "sentences_per_s": round(len(sentences) / full_seconds, 2)}]
    options = DecodeOptions(beam_size=beam_size)
    for k in SWEEP_K:
        for frequent in SWEEP_FREQUENT:
            translator.shortlist = stored.with_sizes(k, frequent)
            sizes = [candidate_count(translator.shortlist, [ids[i] for i in chunk], target_size)
                     for chunk in length_sorted_batches(ids, batch_sentences)]
            start = time.perf_counter()
            found = translator.translate_text(sentences, options)
            seconds = time.perf_counter() - start
            rows.append({"k": k, "frequent": frequent, "bleu": bleu(found, references),
                         "coverage": round(translator.shortlist.coverage(ids, [t.target_ids for t in full]), 5),
                         "batch_coverage": round(translator.shortlist.coverage(
                             ids, [t.target_ids for t in full], length_sorted_batches(ids, batch_sentences)), 5),
                         "differing_from_full": differing(full, found),
                         "mean_candidates": round(float(np.mean(sizes)), 1),
                         "single_sentence_mean_candidates": round(float(np.mean(
                             [candidate_count(translator.shortlist, [s], target_size) for s in ids])), 1),
                         "sentences_per_s": round(len(sentences) / seconds, 2)})
            print(rows[-1], flush=True)
    return {"benchmark": "decode_shortlist_sweep", "model": relative(model), "beam_size": beam_size,
            "batch_sentences": batch_sentences, "environment": ENVIRONMENT, "rows": rows}


def candidate_count(shortlist, sources, vocab_size: int) -> int:
    """How many target ids a batch of `sources` scores (the whole vocabulary when the shortlist steps aside)."""
    candidates = shortlist.candidates(sources)
    return vocab_size if candidates is None else len(candidates)


def search_options_effect(model: Path, sentences, references, beam_size: int, batch_sentences: int) -> dict:
    """Validation BLEU (and repeated n-grams) with n-gram blocking and the coverage penalty, each alone."""
    translator = Translator.load(str(model))
    translator.batch_sentences = batch_sentences
    rows = []
    for blocking, penalty in SEARCH_OPTION_GRID:
        options = DecodeOptions(beam_size=beam_size, block_ngram_repeat=blocking, coverage_penalty=penalty)
        start = time.perf_counter()
        found = translator.translate_text(sentences, options)
        seconds = time.perf_counter() - start
        repeats = sum(has_repeated_ngram(t.target_ids, 3) for t in found)
        rows.append({"block_ngram_repeat": blocking, "coverage_penalty": penalty, "bleu": bleu(found, references),
                     "outputs_repeating_a_trigram": repeats, "sentences_per_s": round(len(sentences) / seconds, 2)})
        print(rows[-1], flush=True)
    return {"benchmark": "decode_search_options", "model": relative(model), "beam_size": beam_size,
            "environment": ENVIRONMENT, "rows": rows}


def has_repeated_ngram(ids, n: int) -> bool:
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return len(grams) != len(set(grams))


def print_search_options(document: dict) -> None:
    print(f"{'block_ngram_repeat':>18} {'coverage_penalty':>16} {'BLEU':>6} {'repeating':>9} {'sent/s':>7}")
    for row in document["rows"]:
        print(f"{row['block_ngram_repeat']:>18} {row['coverage_penalty']:>16} {row['bleu']:>6.2f} "
              f"{row['outputs_repeating_a_trigram']:>9} {row['sentences_per_s']:>7.2f}")


def print_sweep(document: dict) -> None:
    print(f"{'k':>4} {'frequent':>8} {'BLEU':>6} {'coverage':>9} {'batch cov':>9} {'cand/batch':>10} "
          f"{'cand/sent':>9} {'sent/s':>7}")
    for row in document["rows"]:
        print(f"{str(row['k']):>4} {str(row['frequent']):>8} {row['bleu']:>6.2f} {row['coverage']:>9.4f} "
              f"{row.get('batch_coverage', 1.0):>9.4f} "
              f"{row['mean_candidates']:>10} {row.get('single_sentence_mean_candidates', '-'):>9} "
              f"{row['sentences_per_s']:>7.2f}")


def print_table(document: dict) -> None:
    results = document["results"]
    print(f"{'path':<16} {'1 sentence p50':>15} {'p90':>9} {'val sent/s':>11} {'out tok/s':>10} {'BLEU':>6}")
    for name, result in results.items():
        single = result.get("single_sentence")
        batch = result["validation_set"]
        latency = f"{single['median_ms']:>12.1f} ms {single['p90_ms']:>6.1f} ms" if single else f"{'-':>25}"
        print(f"{name:<16} {latency} {batch['sentences_per_s']:>11.2f} {batch['output_tokens_per_s']:>10.1f} "
              f"{result.get('bleu', float('nan')):>6.2f}")
    print(document["summary"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="trained raw-text model directory")
    parser.add_argument("--single", type=int, default=100, help="sentences decoded one at a time")
    parser.add_argument("--single-rounds", type=int, default=2, help="passes over those sentences per path")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the validation set per path")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--batch-sentences", type=int, default=32)
    parser.add_argument("--skip-peer", action="store_true", help="no onmt_translate passes")
    parser.add_argument("--renormalised", action="store_true", help="also the shortlist normalised over its "
                        "candidates only (rest_rank=0), the way the search normalised before")
    parser.add_argument("--sweep", action="store_true", help="the shortlist grid instead of the comparison")
    parser.add_argument("--train-rec", type=Path, default=DEFAULT_TRAIN_REC, help="training pairs for --sweep")
    parser.add_argument("--search-options", action="store_true",
                        help="BLEU with n-gram blocking and the coverage penalty instead of the comparison")
    parser.add_argument("--previous", help="also time this commit's Translator and translate (e.g. the last "
                        "release), exported under build/previous-release/")
    parser.add_argument("--limit", type=int, help="only the first N validation sentences (smoke runs)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    sentences, references = validation_text()
    if args.limit:
        sentences, references = sentences[:args.limit], references[:args.limit]
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    if args.sweep:
        document = sweep(args.model, args.train_rec, sentences, references, args.beam_size, args.batch_sentences)
        document["load_average"] = {"start": load_at_start, "end": [round(x, 2) for x in os.getloadavg()]}
        return save_results(args.output or SWEEP_PATH, document, print_sweep)
    if args.search_options:
        document = search_options_effect(args.model, sentences, references, args.beam_size, args.batch_sentences)
        document["load_average"] = {"start": load_at_start, "end": [round(x, 2) for x in os.getloadavg()]}
        return save_results(args.output or OPTIONS_PATH, document, print_search_options)
    paths = load_paths(args.model, args.beam_size, args.batch_sentences, args.renormalised)
    peer = None if args.skip_peer else peer_runner(args.beam_size, args.batch_sentences)
    external, release = {}, None
    if args.previous:
        tree = previous_release.export_commit(args.previous)
        external["previous_release"] = lambda texts: previous_release.single_sentence_seconds(
            tree, args.model, texts, args.beam_size)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".en", delete=False) as handle:
            handle.write("".join(line + "\n" for line in sentences))
        release = lambda: previous_release.translate_file(tree, args.model, Path(handle.name), args.beam_size)
    single = single_sentence_latencies(paths, sentences[:args.single], args.single_rounds, external)
    batch, outputs = validation_passes(paths, sentences, args.repeats, peer, release)
    shortlist_translator = paths["shortlist"][0]
    ids, full_ids = source_ids(shortlist_translator, sentences), [t.target_ids for t in outputs["full"]]
    coverage = shortlist_translator.shortlist.coverage(ids, full_ids)
    batch_coverage = shortlist_translator.shortlist.coverage(ids, full_ids,
                                                             length_sorted_batches(ids, args.batch_sentences))
    results = {name: {"single_sentence": single.get(name), "validation_set": batch[name]} for name in batch}
    for name in outputs:
        results[name]["bleu"] = bleu(outputs[name], references)
    new, old = results["shortlist"], results["previous"]
    summary = {
        "single_sentence_median_ms": new["single_sentence"]["median_ms"],
        "single_sentence_speedup_vs_previous": round(old["single_sentence"]["median_ms"]
                                                     / new["single_sentence"]["median_ms"], 2),
        "validation_sentences_per_s": new["validation_set"]["sentences_per_s"],
        "validation_speedup_vs_previous": round(new["validation_set"]["sentences_per_s"]
                                                / old["validation_set"]["sentences_per_s"], 2),
        "bleu_shortlist_minus_full": round(new["bleu"] - results["full"]["bleu"], 2),
        "shortlist_coverage_of_full_output": round(coverage, 5),
        "batch_shortlist_coverage_of_full_output": round(batch_coverage, 5),
        "full_outputs_differing_from_previous": differing(outputs["full"], outputs["previous"]),
    }
    if "previous_release" in batch:
        release_text = batch["previous_release"].pop("outputs")
        results["previous_release"]["bleu"] = round(sacrebleu.corpus_bleu(release_text, [references]).score, 2)
        summary["full_outputs_differing_from_previous_release"] = sum(
            a.text != b for a, b in zip(outputs["full"], release_text))
        summary["single_sentence_speedup_vs_previous_release"] = round(
            results["previous_release"]["single_sentence"]["median_ms"] / new["single_sentence"]["median_ms"], 2)
        summary["validation_speedup_vs_previous_release"] = round(
            new["validation_set"]["sentences_per_s"] / batch["previous_release"]["sentences_per_s"], 2)
    if "onmt_translate" in batch:
        summary["output_tokens_per_s_vs_onmt"] = round(new["validation_set"]["output_tokens_per_s"]
                                                       / batch["onmt_translate"]["output_tokens_per_s"], 2)
    shortlist = shortlist_translator.shortlist
    document = {"benchmark": "decode", "model": relative(args.model), "beam_size": args.beam_size,
                "batch_sentences": args.batch_sentences, "shortlist": {"k": shortlist.k,
                                                                       "frequent": shortlist.frequent},
                "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "environment": ENVIRONMENT},
                "load_average": {"start": load_at_start, "end": [round(x, 2) for x in os.getloadavg()]},
                "results": results, "summary": summary}
    return save_results(args.output or RESULTS_PATH, document, print_table)


if __name__ == "__main__":
    sys.exit(main())
