"""Fine-tuning benchmark: the Multi30k model continued on another domain against the same model from scratch.

The base model is the 30-minute Multi30k en->de model of ``make bench-quality`` (``--base-model``, default
``build/bench/quality/opt_ml/model``; it must be a raw-text model with subword models). The new domain is the
OpenNMT-py toy WMT sample (``../shared/data/onmt-toy-ende``: Europarl / CommonCrawl / news), Moses-detokenised
(XML escapes undone) into raw text and prepared with the base model's subword models
(``recordio_tools prepare --subword-models-from``), so both runs share its vocabularies.

Two training jobs run through the real job (``python -m seq2seq.train_job``), each for ``--minutes`` (SIGTERM at
the cap: the job saves and exports the parameters it has):
  * ``finetuned``: the base model's model.tar.gz in the ``model`` channel;
  * ``scratch``: the same hyperparameters (the base model's, from its config.json) without it.
Both export the parameters of the moment they stop (no intermediate checkpoint is kept as "best").

Scored with sacreBLEU (cased, 13a) at beam 5 on raw text: the toy data's validation set (``src-val.txt``, 50
sentences, or the first ``--val-sentences`` of the 3,000-line ``src-val-full.txt``) for the base model as it is,
the fine-tuned and the scratch model; and Multi30k's validation set for the base model and the fine-tuned one
(what fine-tuning costs on the first domain). Results go to ``bench/results/finetune.json``.

Usage: ``python -m bench.bench_finetune [--minutes 5] [--base-model DIR] [--val-sentences N] [--hp name=value ...]``.
A smoke run: ``--minutes 0.5 --train-lines 500 --eval-sentences 20 --work-dir build/bench/finetune-smoke
--output build/bench/finetune-smoke.json --base-model <a small subword model>``.
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from bench.bench_quality import raw_bleu, read_lines, run_training
from bench.bench_train import machine_info, make_job_tree
from bench.prepare_multi30k import SOURCE_LANG, TARGET_LANG
from bench.results_io import relative, save_results
from bench.sockeye_peer import exit_on_sigterm
from seq2seq.data.subword import SUBWORD_FILES
from seq2seq.shared_data import shared_data_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BASE_MODEL = REPO_ROOT / "build" / "bench" / "quality" / "opt_ml" / "model"
DEFAULT_WORK_DIR = REPO_ROOT / "build" / "bench" / "finetune"
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "results" / "finetune.json"
# Fixed for both runs: no periodic evaluation (the parameters at the cap are exported), no time limit of their own.
RUN_SETTINGS = {"checkpoint_frequency_num_batches": "1000000", "bleu_sample_size": "0",
                "optimized_metric": "perplexity", "max_num_epochs": "none", "max_num_batches": "-1",
                "log_frequency_num_batches": "20", "devices": "cpu"}


def detokenise(source: Path, target: Path, lang: str, limit: int = None) -> int:
    """Moses-detokenise (and unescape) `source` line by line into `target`; the number of lines written."""
    from sacremoses import MosesDetokenizer
    detokenizer = MosesDetokenizer(lang=lang)
    lines = read_lines(source)[:limit]
    target.write_text("".join(detokenizer.detokenize(line.split()) + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def prepare_domain(work_dir: Path, base_model: Path, train_lines: int = None, val_sentences: int = None) -> dict:
    """The toy data as raw text, and its records cut with the base model's subword models."""
    data = shared_data_dir("onmt-toy-ende")
    raw = work_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    val_name = "val-full" if val_sentences else "val"
    files = {}
    for split, name, limit in (("train", "train", train_lines), ("val", val_name, val_sentences)):
        for side, prefix, lang in (("source", "src", SOURCE_LANG), ("target", "tgt", TARGET_LANG)):
            path = raw / f"{split}.{lang}"
            if not (data / f"{prefix}-{name}.txt").is_file():
                raise SystemExit(f"missing {data / f'{prefix}-{name}.txt'} (set SEQ2SEQ_SHARED_DIR)")
            detokenise(data / f"{prefix}-{name}.txt", path, lang, limit)
            files[f"{split}_{side}"] = path
    rec_dir = work_dir / "prepared"
    if rec_dir.exists():
        shutil.rmtree(rec_dir)
    command = [sys.executable, "-m", "recordio_tools", "prepare", "--quiet", "--output", str(rec_dir),
               "--subword-models-from", str(base_model)]
    for name, path in files.items():
        command += [f"--{name.replace('_', '-')}", str(path)]
    print("  " + " ".join(command[1:]), flush=True)
    if subprocess.run(command, cwd=REPO_ROOT).returncode != 0:
        raise SystemExit("recordio_tools prepare failed")
    return {"rec_dir": rec_dir, **files}


def base_hyperparameters(base_model: Path, overrides: dict) -> dict:
    """The base model's hyperparameters (from its config.json) with the run settings and `overrides`."""
    config = json.loads((base_model / "config.json").read_text())
    values = {k: ("none" if v is None else json.dumps(v) if isinstance(v, bool) else str(v))
              for k, v in config.get("hyperparameters", {}).items()}
    return dict(values, **RUN_SETTINGS, **overrides)


def make_tree(base: Path, rec_dir: Path, hyperparameters: dict, model_archive: Path = None) -> Path:
    if base.exists():
        shutil.rmtree(base)
    make_job_tree(base, rec_dir, hyperparameters)
    for name in SUBWORD_FILES:
        os.symlink(Path(rec_dir).resolve() / name, base / "input" / "data" / "vocab" / name)
    if model_archive is not None:
        channel = base / "input" / "data" / "model"
        channel.mkdir(parents=True)
        shutil.copy(model_archive, channel / "model.tar.gz")
        config_path = base / "input" / "config" / "inputdataconfig.json"
        channels = json.loads(config_path.read_text())
        channels["model"] = {"TrainingInputMode": "File", "ContentType": "application/x-sagemaker-model"}
        config_path.write_text(json.dumps(channels, indent=2))
    return base


def pack_model(model_dir: Path, archive: Path) -> Path:
    """model.tar.gz of the base model, as SageMaker uploads a job's /opt/ml/model."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def bleu(model_dir: Path, sources: Path, references: Path, limit: int = None, beam: int = 5) -> dict:
    from seq2seq.inference.translator import DecodeOptions, Translator
    translator = Translator.load(str(model_dir))
    source_lines, reference_lines = read_lines(sources)[:limit], read_lines(references)[:limit]
    options = DecodeOptions(beam_size=beam, length_penalty_alpha=translator.default_options.length_penalty_alpha,
                            length_penalty_beta=translator.default_options.length_penalty_beta)
    start = time.monotonic()
    hypotheses = [t.text for t in translator.translate_text(source_lines, options)]
    score = raw_bleu(hypotheses, reference_lines, lowercase=False)
    return {"score": score["score"], "signature": score["signature"], "sentences": len(source_lines),
            "decode_s": round(time.monotonic() - start, 1),
            "example": {"source": source_lines[0], "hypothesis": hypotheses[0], "reference": reference_lines[0]}}


def validation_perplexity(model_dir: Path, rec_dir: Path) -> float:
    """Token perplexity of the model on the prepared toy validation records (no dropout, no smoothing)."""
    import mxnet as mx
    from seq2seq.data.batch_iterator import BucketBatchIterator
    from seq2seq.data.dataset import read_parallel_data
    from seq2seq.data.recordio_codec import read_pairs
    from seq2seq.model_dir import load_model
    from seq2seq.training.evaluation import perplexity_and_accuracy
    model, source_vocab, target_vocab, _ = load_model(str(model_dir))
    config = model.config
    data = read_parallel_data([("val", read_pairs(str(rec_dir / "val.rec")))], len(source_vocab), len(target_vocab),
                              config.max_seq_len_source, config.max_seq_len_target)
    iterator = BucketBatchIterator(data, [(config.max_seq_len_source, config.max_seq_len_target + 1)], 32, 0,
                                   shuffle=False)
    return round(perplexity_and_accuracy(model, iterator, mx.cpu())["perplexity"], 2)


def updates_of(base: Path):
    state = base / "checkpoints" / "training_state" / "state.json"
    return json.loads(state.read_text())["num_updates"] if state.exists() else None


def print_table(result: dict) -> None:
    print(f"\n{'model':<24}{'toy news val BLEU':>18}{'toy val ppl':>12}{'Multi30k val BLEU':>19}{'updates':>9}")
    for name, row in result["models"].items():
        toy, m30k = row.get("toy_val"), row.get("multi30k_val")
        print(f"{name:<24}{toy['score'] if toy else float('nan'):>18.2f}{row.get('toy_val_perplexity', 0):>12.1f}"
              f"{m30k['score'] if m30k else float('nan'):>19.2f}{row.get('updates') or '-':>9}")
    print(f"fine-tuned - scratch on the toy validation set: {result['finetuned_minus_scratch']:+.2f} BLEU")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-model", type=Path, default=DEFAULT_BASE_MODEL)
    parser.add_argument("--minutes", type=float, default=5.0, help="training time of each run (default 5)")
    parser.add_argument("--train-lines", type=int, help="use only the first N training pairs (smoke runs)")
    parser.add_argument("--val-sentences", type=int, help="score the first N of src-val-full.txt instead of the "
                                                          "50-line src-val.txt")
    parser.add_argument("--eval-sentences", type=int, help="score only N sentences of each set (smoke runs)")
    parser.add_argument("--hp", nargs="*", metavar="NAME=VALUE", help="hyperparameter overrides for both runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    base_model = args.base_model.resolve()
    if not (base_model / "params.best").exists() or not all((base_model / n).exists() for n in SUBWORD_FILES):
        print(f"{base_model}: not a trained raw-text model (params.best and subword models needed)", file=sys.stderr)
        return 1
    overrides = dict(item.split("=", 1) for item in args.hp or ())
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    print("Preparing the toy en-de data with the base model's subword models", flush=True)
    domain = prepare_domain(work_dir, base_model, args.train_lines, args.val_sentences)
    hyperparameters = base_hyperparameters(base_model, overrides)
    archive = pack_model(base_model, work_dir / "model.tar.gz")
    runs = {}
    for name, model_archive in (("finetuned", archive), ("scratch", None)):
        tree = make_tree(work_dir / name / "opt_ml", domain["rec_dir"], hyperparameters, model_archive)
        print(f"Training {name} for {args.minutes:g} min (log: {work_dir / name / 'train.log'}) ...", flush=True)
        runs[name] = run_training(tree, work_dir / name / "train.log", args.minutes, args.threads)
        runs[name]["updates"] = updates_of(tree)
        if runs[name]["returncode"] != 0:
            print(f"{name} training failed: {runs[name]['failure'] or 'see the log'}", file=sys.stderr)
            return 1
    multi30k = shared_data_dir("multi30k")
    limit = args.eval_sentences
    print("Evaluating (sacreBLEU cased 13a, beam 5) ...", flush=True)
    models = {"base (Multi30k, as is)": {"dir": base_model, "updates": None},
              "finetuned": {"dir": work_dir / "finetuned" / "opt_ml" / "model",
                            "updates": runs["finetuned"]["updates"]},
              "scratch": {"dir": work_dir / "scratch" / "opt_ml" / "model", "updates": runs["scratch"]["updates"]}}
    for name, row in models.items():
        row["toy_val"] = bleu(row["dir"], domain["val_source"], domain["val_target"], limit)
        row["toy_val_perplexity"] = validation_perplexity(row["dir"], domain["rec_dir"])
        if name != "scratch":
            row["multi30k_val"] = bleu(row["dir"], multi30k / f"val.{SOURCE_LANG}", multi30k / f"val.{TARGET_LANG}",
                                       limit)
        row["dir"] = relative(row["dir"])
        print(f"  {name}: toy {row['toy_val']['score']:.2f}"
              + (f", Multi30k {row['multi30k_val']['score']:.2f}" if "multi30k_val" in row else ""), flush=True)
    result = {
        "benchmark": "finetune", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(), "minutes_per_run": args.minutes, "base_model": relative(base_model),
        "data": {"train_pairs": args.train_lines or 10000,
                 "toy_val": f"onmt-toy-ende {'src-val-full.txt' if args.val_sentences else 'src-val.txt'} "
                            f"({limit or args.val_sentences or 50} sentences), Moses-detokenised",
                 "multi30k_val": f"multi30k val ({limit or 1014} sentences)"},
        "hyperparameters": hyperparameters, "training": runs, "models": models,
        "finetuned_minus_scratch": round(models["finetuned"]["toy_val"]["score"]
                                         - models["scratch"]["toy_val"]["score"], 2),
    }
    return save_results(args.output, result, print_table)


if __name__ == "__main__":
    sys.exit(main())
