"""The small-model training benchmark: milliseconds per update where per-call overhead dominates.

Model: embeddings 64, hidden 128 (bi-LSTM encoder 64+64, LSTM decoder 128, MLP attention), batches
of 64 sentences, a 40-word vocabulary on each side (36 words plus ``<pad> <unk> <s> </s>``),
sentences of 4-14 tokens. The task is generated: the target is the source reversed, each word
mapped through a fixed bijection, so its length equals the source's.

Milliseconds per update through the training job are measured two ways:
* ``whole_process_ms``: (wall time of a 1,000-update run - wall time of a 200-update run) / 800,
  each the whole ``python -m seq2seq.train_job`` process: start-up, data loading and the final
  save cancel out, everything that happens per update counts;
* ``window_ms``: the trainer's own progress lines of the long run, over the updates after the
  short run's count (1000 / updates/s).

Used by ``bench.bench_train``; ``python -m bench.small_model [--long 1000 --short 200]`` runs it alone.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench import sockeye_peer
from bench.job_runner import run_training_job

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "build" / "small-model"
WORDS = 36                      # + 4 special symbols = a 40-word vocabulary
MIN_LEN, MAX_LEN = 4, 14
TRAIN_PAIRS, VAL_PAIRS = 20000, 500
BATCH_SIZE = 64
TARGET_MS_PER_UPDATE = 20.0

HYPERPARAMETERS = {
    "num_embed_source": "64", "num_embed_target": "64", "rnn_num_hidden": "128",
    "num_layers_encoder": "1", "num_layers_decoder": "1", "rnn_cell_type": "lstm",
    "rnn_attention_type": "mlp", "batch_size": str(BATCH_SIZE), "optimizer_type": "adam",
    "max_seq_len_source": "20", "max_seq_len_target": "20", "bleu_sample_size": "0", "devices": "cpu",
}
VARIANTS = {"if": {"input_feeding": "true"}, "noif": {"input_feeding": "false"}}


def generate_text(directory: Path, seed: int = 11) -> dict:
    """Write ``{train,val}.{src,trg}``; returns their paths."""
    rng = np.random.RandomState(seed)
    source_words = [f"s{i}" for i in range(WORDS)]
    target_words = [f"t{i}" for i in rng.permutation(WORDS)]
    paths = {}
    for split, count in (("train", TRAIN_PAIRS), ("val", VAL_PAIRS)):
        lengths = rng.randint(MIN_LEN, MAX_LEN + 1, size=count)
        ids = [rng.randint(0, WORDS, size=n) for n in lengths]
        for side, lines in (("src", [" ".join(source_words[i] for i in s) for s in ids]),
                            ("trg", [" ".join(target_words[i] for i in s[::-1]) for s in ids])):
            path = Path(directory) / f"{split}.{side}"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            paths[f"{split}_{side}"] = path
    return paths


def prepare(directory: Path = DATA_DIR, python: str = sys.executable) -> Path:
    """Generated text and its RecordIO files under ``directory`` (cached); returns the ``rec`` dir."""
    import subprocess
    directory = Path(directory)
    rec = directory / "rec"
    stamp = rec / ".generated"
    signature = json.dumps({"words": WORDS, "lengths": [MIN_LEN, MAX_LEN], "pairs": [TRAIN_PAIRS, VAL_PAIRS]})
    if stamp.exists() and stamp.read_text() == signature:
        return rec
    directory.mkdir(parents=True, exist_ok=True)
    paths = generate_text(directory)
    subprocess.run([python, "-m", "recordio_tools", "prepare", "--train-source", str(paths["train_src"]),
                    "--train-target", str(paths["train_trg"]), "--val-source", str(paths["val_src"]),
                    "--val-target", str(paths["val_trg"]), "--output", str(rec)],
                   cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    for name in ("vocab.src.json", "vocab.trg.json"):
        size = len(json.loads((rec / name).read_text()))
        if size != WORDS + 4:
            raise RuntimeError(f"{rec / name}: {size} words, expected {WORDS + 4}")
    stamp.write_text(signature)
    return rec


def run_job(rec_dir: Path, work_dir: Path, variant: str, updates: int, log_every: int, seed: int,
            threads: int, wait_policy: str | None) -> dict:
    """One training-job run of ``updates`` updates: wall seconds, peak RSS, and its progress lines."""
    from bench.bench_train import make_job_tree, parse_progress
    hps = dict(HYPERPARAMETERS, **VARIANTS[variant])
    hps.update(max_num_batches=str(updates), checkpoint_frequency_num_batches=str(updates + 1),
               log_frequency_num_batches=str(log_every), seed=str(seed))
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix=f"small_{variant}_{updates}_", dir=work_dir))
    make_job_tree(base, rec_dir, hps)
    run = run_training_job(base, threads, wait_policy, work_dir / f"small_{variant}_{updates}_{seed}.log",
                           "small-model training job")
    return {"updates": updates, "wall_s": run.wall_s, "peak_rss_mib": run.peak_rss_mib,
            "progress": parse_progress(run.log_text(), log_every)}


def measure(rec_dir: Path, work_dir: Path, variant: str, long: int = 1000, short: int = 200, seed: int = 1,
            threads: int = 2, wait_policy: str | None = "PASSIVE") -> dict:
    """ms per update of one variant: whole-process difference and the long run's measured window."""
    if not 0 < short < long:
        raise ValueError(f"need 0 < short < long updates, got {short} and {long}")
    log_every = next(n for n in (100, 50, 20, 10, 5, 1) if short % n == 0 and long % n == 0)
    long_run = run_job(rec_dir, work_dir, variant, long, log_every, seed, threads, wait_policy)
    short_run = run_job(rec_dir, work_dir, variant, short, log_every, seed, threads, wait_policy)
    window = [p for p in long_run["progress"] if p.update - log_every >= short]
    window_s = sum(log_every / p.updates_per_s for p in window)
    return {"variant": variant, "hyperparameters": VARIANTS[variant], "long_updates": long,
            "short_updates": short,
            "whole_process_ms": 1000.0 * (long_run["wall_s"] - short_run["wall_s"]) / (long - short),
            "window_ms": 1000.0 * window_s / (len(window) * log_every) if window else None,
            "long_wall_s": long_run["wall_s"], "short_wall_s": short_run["wall_s"],
            "peak_rss_mib": long_run["peak_rss_mib"], "target_ms": TARGET_MS_PER_UPDATE}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--long", type=int, default=1000)
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    sockeye_peer.exit_on_sigterm()
    rec = prepare()
    with tempfile.TemporaryDirectory(prefix="small_model_") as tmp:
        for variant in args.variants:
            print(json.dumps(measure(rec, Path(tmp), variant, args.long, args.short, threads=args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
