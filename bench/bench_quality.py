"""Translation-quality benchmark: the reference model trained on Multi30k en-de to early stopping.

Training goes through the real training job (``python -m seq2seq.train_job``) in a persistent
SageMaker tree (``build/bench/quality[-words]/opt_ml`` by default), so an interrupted or ``--max-minutes``
capped run resumes from its checkpoints when started again. The job stops itself by early stopping;
with ``--max-minutes`` it gets SIGTERM at the cap, saves its state and exports the best model so far.

Two text pipelines (``--text``):
  * ``raw`` (default): the raw, cased Multi30k files (``../shared/data/multi30k``) go through
    ``recordio_tools prepare --subword`` (SentencePiece, ``--subword`` / ``--subword-vocab-size`` /
    ``--joint-vocab``); the model takes and gives raw text. Scored on the validation set (1,014
    sentences), beam 5 and greedy, with sacreBLEU's standard settings (cased, 13a) against the raw
    references, and lower-cased (``lowercase=True``) for comparison with the literature. The job's
    checkpoint BLEU is the same cased, detokenised sacreBLEU.
  * ``words``: the Multi30k literature's preprocessing (lower-cased, Moses-tokenised with sacremoses,
    ``bench/prepare_multi30k.py``) and word vocabularies: lower-cased tokenised BLEU (sacreBLEU with
    ``tokenize='none'``) and sacreBLEU of the sacremoses-detokenised output against the raw references
    with ``lowercase=True``.
The training curve comes from the job's ``output/data/metrics.json``.
Results go to ``bench/results/quality.json`` (``quality-words.json`` for ``--text words``) and a table
is printed.

Usage: ``python -m bench.bench_quality [--text raw|words] [--max-minutes M] [--fresh] [--eval-only]
[--eval-sentences N] [--hp name=value ...]`` (long on CPU: run it in the background, e.g.
``nohup make bench-quality > quality.log 2>&1 &``). A smoke run of a minute or two:
``python -m bench.bench_quality --work-dir build/bench/quality-smoke --fresh --output build/bench/quality-smoke.json
--eval-sentences 40 --hp max_num_batches=20 checkpoint_frequency_num_batches=20 bleu_sample_size=20``.
"""
import argparse
import dataclasses
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_train import machine_info
from bench.prepare_multi30k import SOURCE_LANG, TARGET_LANG, prepare
from bench.results_io import save_results
from seq2seq.data.subword import SUBWORD_FILES
from seq2seq.local_job import make_job_tree, stop_job
from seq2seq.shared_data import shared_data_dir
from bench.job_runner import training_job_environment
from bench.sockeye_peer import exit_on_sigterm
import recipes

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILES = {"raw": REPO_ROOT / "bench" / "results" / "quality.json",
                 "words": REPO_ROOT / "bench" / "results" / "quality-words.json"}
WORK_DIRS = {"raw": REPO_ROOT / "build" / "bench" / "quality", "words": REPO_ROOT / "build" / "bench" / "quality-words"}
SUBWORD_DIR = REPO_ROOT / "build" / "multi30k"

# The README's settings for a small corpus (29k pairs, ~453 updates an epoch): recipes/multi30k-small-corpus.
QUALITY_RECIPE = "multi30k-small-corpus"
QUALITY_HYPERPARAMETERS = recipes.load(QUALITY_RECIPE).hyperparameters


# The recommended recipe's vocabulary for the raw-text path (README, "Recommended settings").
SUBWORD_KIND, SUBWORD_VOCAB_SIZE = "unigram", 8000


@dataclasses.dataclass(frozen=True)
class RawMulti30k:
    """The raw-text setup: prepared records with subword models, and the raw validation files."""
    rec_dir: Path
    val_source: Path
    val_target: Path


def prepare_raw(kind: str, vocab_size: int, joint: bool, data_dir: Path = None) -> RawMulti30k:
    """``recordio_tools prepare --subword`` on the raw Multi30k files (skipped when its outputs are newer)."""
    data_dir = Path(data_dir or shared_data_dir("multi30k"))
    files = {f"{split}_{side}": data_dir / f"{split}.{lang}" for split in ("train", "val")
             for side, lang in (("source", SOURCE_LANG), ("target", TARGET_LANG))}
    for path in files.values():
        if not path.is_file():
            raise SystemExit(f"Multi30k input file not found: {path} (set SEQ2SEQ_SHARED_DIR to the shared "
                             "directory that holds data/multi30k)")
    rec_dir = SUBWORD_DIR / f"raw-{kind}-{vocab_size}{'-joint' if joint else ''}"
    outputs = [rec_dir / name for name in ("train.rec", "val.rec", "vocab.src.json", "vocab.trg.json", *SUBWORD_FILES)]
    newest_input = max(path.stat().st_mtime for path in files.values())
    if all(p.exists() for p in outputs) and min(p.stat().st_mtime for p in outputs) >= newest_input:
        print(f"  up to date: {rec_dir}")
    else:
        command = [sys.executable, "-m", "recordio_tools", "prepare", "--output", str(rec_dir),
                   "--subword", kind, "--subword-vocab-size", str(vocab_size)] + (["--joint-vocab"] if joint else [])
        for name, path in files.items():
            command += [f"--{name.replace('_', '-')}", str(path)]
        print("  " + " ".join(command[1:]), flush=True)
        if subprocess.run(command, cwd=REPO_ROOT).returncode != 0:
            raise SystemExit("recordio_tools prepare failed")
    return RawMulti30k(rec_dir, files["val_source"], files["val_target"])


def parse_overrides(items) -> dict:
    """``name=value`` strings -> dict; a malformed item is an error naming it."""
    overrides = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--hp expects name=value, got {item!r}")
        overrides[name.strip()] = value.strip()
    return overrides


def prepare_tree(base: Path, rec_dir: Path, hyperparameters: dict, fresh: bool) -> Path:
    """Create (or reuse, for resuming) the SageMaker tree; the hyperparameters file is rewritten."""
    if fresh and base.exists():
        shutil.rmtree(base)
    if not (base / "input" / "data").exists():
        make_job_tree(base, rec_dir, hyperparameters, with_subword_models=True)  # raw text: in the vocab channel
    else:
        (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    for stale in ("output/failure", "output/success"):
        (base / stale).unlink(missing_ok=True)
    return base


def run_training(base: Path, log_path: Path, max_minutes: float | None, threads: int = 2) -> dict:
    """Run the training job to its own end, or SIGTERM it after ``max_minutes``; log appended."""
    env = training_job_environment(base, threads, wait_policy=None)          # OMP_WAIT_POLICY unset, as it ships
    start, capped = time.monotonic(), False
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== training started {datetime.datetime.now().isoformat(timespec='seconds')} ===\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "seq2seq.train_job"], env=env, cwd=REPO_ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=max_minutes * 60 if max_minutes else None)
        except subprocess.TimeoutExpired:
            capped = True
            print(f"  --max-minutes {max_minutes} reached: asking the job to save and stop", flush=True)
            stop_job(proc)
        except BaseException:  # interrupted ourselves: the job saves its state, a rerun resumes
            stop_job(proc)
            raise
    failure = base / "output" / "failure"
    return {"returncode": proc.returncode, "capped": capped, "wall_s": round(time.monotonic() - start, 1),
            "failure": failure.read_text()[:1000] if failure.exists() else None}


def tokenised_bleu(hypotheses: list, references: list) -> dict:
    """Lower-cased tokenised BLEU: both sides already Moses-tokenised and lower-cased."""
    from sacrebleu.metrics import BLEU
    metric = BLEU(tokenize="none", force=True)
    score = metric.corpus_score(hypotheses, [references])
    return {"score": round(score.score, 2), "signature": str(metric.get_signature()), "detail": str(score)}


def detokenised_bleu(hypotheses: list, raw_references: list, lang: str = TARGET_LANG) -> dict:
    """sacreBLEU (13a, lower-cased) of detokenised hypotheses against the raw references.

    On Multi30k's short captions 13a re-tokenises almost exactly as Moses did, so this score lands
    within a few hundredths of the tokenised one; ``detail`` shows the differing n-gram precisions
    and reference length, ``example`` one detokenised hypothesis.
    """
    from sacrebleu.metrics import BLEU
    from sacremoses import MosesDetokenizer
    detokenizer = MosesDetokenizer(lang=lang)
    detokenised = [detokenizer.detokenize(h.split()) for h in hypotheses]
    metric = BLEU(lowercase=True)
    score = metric.corpus_score(detokenised, [raw_references])
    return {"score": round(score.score, 2), "signature": str(metric.get_signature()), "detail": str(score),
            "example": detokenised[0] if detokenised else None}


def read_lines(path) -> list:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def raw_bleu(hypotheses: list, raw_references: list, lowercase: bool) -> dict:
    """sacreBLEU with its standard settings (13a) on raw text: cased, or ``lowercase=True``."""
    from sacrebleu.metrics import BLEU
    metric = BLEU(lowercase=lowercase)
    score = metric.corpus_score(hypotheses, [raw_references])
    return {"score": round(score.score, 2), "signature": str(metric.get_signature()), "detail": str(score)}


def evaluate_raw(model_dir: Path, data: RawMulti30k, beams=(5, 1), limit: int = None) -> dict:
    """Decode the raw validation sources with each beam size; cased and lower-cased sacreBLEU, speed."""
    from seq2seq.inference.translator import DecodeOptions, Translator
    translator = Translator.load(str(model_dir))
    if translator.subword is None:
        raise SystemExit(f"{model_dir} has no subword models: trained with --text words?")
    sources, references = read_lines(data.val_source)[:limit], read_lines(data.val_target)[:limit]
    results = {}
    for beam in beams:
        options = DecodeOptions(beam_size=beam, length_penalty_alpha=translator.default_options.length_penalty_alpha,
                                length_penalty_beta=translator.default_options.length_penalty_beta)
        start = time.monotonic()
        hypotheses = [t.text for t in translator.translate_text(sources, options)]
        seconds = time.monotonic() - start
        name = "greedy" if beam == 1 else f"beam{beam}"
        results[name] = {"beam_size": beam, "sacrebleu_cased": raw_bleu(hypotheses, references, False),
                         "sacrebleu_lowercased": raw_bleu(hypotheses, references, True),
                         "sentences": len(sources), "decode_s": round(seconds, 1),
                         "sentences_per_s": round(len(sources) / seconds, 2),
                         "examples": [{"source": s, "hypothesis": h, "reference": r}
                                      for s, h, r in list(zip(sources, hypotheses, references))[:3]]}
        print(f"  {name}: sacreBLEU cased {results[name]['sacrebleu_cased']['score']:.2f}, "
              f"lower-cased {results[name]['sacrebleu_lowercased']['score']:.2f} ({seconds:.0f} s)", flush=True)
    return results


def evaluate(model_dir: Path, data, beams=(5, 1), limit: int = None) -> dict:
    """Decode the tokenised validation set with each beam size; both BLEU forms and decoding speed."""
    from seq2seq.inference.translator import DecodeOptions, Translator
    translator = Translator.load(str(model_dir))
    sources, references = read_lines(data.val_source)[:limit], read_lines(data.val_target)[:limit]
    raw_references = read_lines(data.raw_val_target)[:limit]
    results = {}
    for beam in beams:
        options = DecodeOptions(beam_size=beam, length_penalty_alpha=translator.default_options.length_penalty_alpha,
                                length_penalty_beta=translator.default_options.length_penalty_beta)
        start = time.monotonic()
        translations = translator.translate_text(sources, options)
        seconds = time.monotonic() - start
        hypotheses = [" ".join(t.target_tokens) for t in translations]
        name = "greedy" if beam == 1 else f"beam{beam}"
        results[name] = {"beam_size": beam, "tokenised_lc_bleu": tokenised_bleu(hypotheses, references),
                         "detokenised_sacrebleu": detokenised_bleu(hypotheses, raw_references),
                         "sentences": len(sources), "decode_s": round(seconds, 1),
                         "sentences_per_s": round(len(sources) / seconds, 2),
                         "examples": [{"source": s, "hypothesis": h, "reference": r}
                                      for s, h, r in list(zip(sources, hypotheses, references))[:3]]}
        print(f"  {name}: tokenised BLEU {results[name]['tokenised_lc_bleu']['score']:.2f}, "
              f"sacreBLEU {results[name]['detokenised_sacrebleu']['score']:.2f} "
              f"({seconds:.0f} s)", flush=True)
    return results


CURVE_KEYS = ("checkpoint", "epoch", "updates", "learning_rate", "train_perplexity",
              "validation_perplexity", "validation_accuracy", "validation_bleu", "validation_bleu_signature",
              "improved")


def training_curve(base: Path) -> list:
    """Per-checkpoint metrics from ``output/data/metrics.json`` (empty if absent)."""
    path = base / "output" / "data" / "metrics.json"
    if not path.exists():
        return []
    history = json.loads(path.read_text())
    return [{k: r[k] for k in CURVE_KEYS if k in r} for r in history]


def print_table(result: dict) -> None:
    raw = result.get("text") == "raw"
    columns = ("sacrebleu_cased", "sacrebleu_lowercased") if raw else ("tokenised_lc_bleu", "detokenised_sacrebleu")
    titles = ("cased BLEU", "lc BLEU") if raw else ("tok. lc BLEU", "sacreBLEU")
    print(f"\n{'decoding':<10}{titles[0]:>14}{titles[1]:>11}{'sent/s':>9}")
    for name, r in result["evaluation"].items():
        print(f"{name:<10}{r[columns[0]]['score']:>14.2f}{r[columns[1]]['score']:>11.2f}{r['sentences_per_s']:>9.1f}")
    first = next(iter(result["evaluation"].values()), None)
    if first:
        print(f"sacreBLEU signature: {first[columns[1 if not raw else 0]]['signature']}")
    curve = result["training_curve"]
    if curve:
        print(f"{len(curve)} checkpoints; last: " + ", ".join(f"{k}={v}" for k, v in curve[-1].items()))


def recipe_prepare_arguments(recipe: "recipes.Recipe") -> list:
    """The recipe's vocabulary choice as this benchmark's --subword options (the command line, after it, wins)."""
    known = {"--subword", "--subword-vocab-size", "--joint-vocab"}
    options = [item for item in recipe.prepare if item.startswith("--")]
    unknown = sorted(set(options) - known)
    if unknown:
        raise SystemExit(f"recipe {recipe.name}: prepare option(s) {', '.join(unknown)} are not supported here")
    return list(recipe.prepare)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", choices=("raw", "words"), default="raw",
                        help="raw: raw cased text through SentencePiece subwords (default); words: lower-cased "
                             "Moses tokens and word vocabularies")
    parser.add_argument("--subword", choices=("unigram", "bpe"), default=SUBWORD_KIND, help="--text raw: model type")
    parser.add_argument("--subword-vocab-size", type=int, default=SUBWORD_VOCAB_SIZE,
                        help="--text raw: entries per subword vocabulary (default %(default)s)")
    parser.add_argument("--joint-vocab", action="store_true", help="--text raw: one subword model for both sides")
    parser.add_argument("--eval-sentences", type=int, help="score only the first N validation sentences (smoke runs)")
    parser.add_argument("--max-minutes", type=float, help="stop training (SIGTERM) after this many minutes")
    parser.add_argument("--work-dir", type=Path, help="SageMaker tree and logs (default build/bench/quality for "
                                                       "raw text, build/bench/quality-words for words)")
    parser.add_argument("--fresh", action="store_true", help="discard an earlier run's checkpoints")
    parser.add_argument("--eval-only", action="store_true", help="evaluate the model already exported")
    parser.add_argument("--recipe", choices=recipes.names(),
                        help="train recipes/RECIPE (its hyperparameters and its vocabulary) instead of "
                             f"{QUALITY_RECIPE}; --hp and the --subword options still override it")
    parser.add_argument("--hp", nargs="*", metavar="NAME=VALUE", help="hyperparameter overrides")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, help="results JSON (default bench/results/quality.json, "
                                                     "quality-words.json for --text words)")
    args = parser.parse_args(argv)
    base_hyperparameters = QUALITY_HYPERPARAMETERS
    if args.recipe:
        recipe = recipes.load(args.recipe)
        base_hyperparameters = recipe.hyperparameters
        args = parser.parse_args(recipe_prepare_arguments(recipe) + list(argv if argv is not None else sys.argv[1:]))
    exit_on_sigterm()
    args.work_dir = (args.work_dir or WORK_DIRS[args.text]).resolve()
    args.output = args.output or RESULTS_FILES[args.text]
    hyperparameters = dict(base_hyperparameters, **parse_overrides(args.hp))
    if args.text == "raw":
        print(f"Preparing raw Multi30k {SOURCE_LANG}->{TARGET_LANG} with {args.subword} subwords", flush=True)
        data = prepare_raw(args.subword, args.subword_vocab_size, args.joint_vocab)
    else:
        data = prepare()
    base = args.work_dir / "opt_ml"
    args.work_dir.mkdir(parents=True, exist_ok=True)
    training = None
    if not args.eval_only:
        prepare_tree(base, data.rec_dir, hyperparameters, args.fresh)
        print(f"Training (log: {args.work_dir / 'train.log'}) ...", flush=True)
        training = run_training(base, args.work_dir / "train.log", args.max_minutes, args.threads)
        if training["returncode"] != 0:
            print(f"training job failed: {training['failure'] or 'see the log'}", file=sys.stderr)
            return 1
    model_dir = base / "model"
    if not (model_dir / "params.best").exists():
        print(f"no trained model in {model_dir}", file=sys.stderr)
        return 1
    print("Evaluating on the validation set ...", flush=True)
    model_metrics = model_dir / "metrics.json"
    result = {
        "benchmark": "quality", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(), "text": args.text, "recipe": args.recipe or QUALITY_RECIPE,
        "data": (f"multi30k en-de val ({args.eval_sentences or 1014}), raw cased text, {args.subword} subwords "
                 f"{args.subword_vocab_size}{' joint' if args.joint_vocab else ''}" if args.text == "raw" else
                 f"multi30k en-de val ({args.eval_sentences or 1014}), lower-cased, Moses-tokenised"),
        "hyperparameters": json.loads((base / "input" / "config" / "hyperparameters.json").read_text()),
        "training": training,
        "model_summary": json.loads(model_metrics.read_text()) if model_metrics.exists() else None,
        "evaluation": (evaluate_raw if args.text == "raw" else evaluate)(model_dir, data, limit=args.eval_sentences),
        "training_curve": training_curve(base),
    }
    return save_results(args.output, result, print_table)


if __name__ == "__main__":
    sys.exit(main())
