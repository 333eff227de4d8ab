"""OpenNMT-py 3.5 as a second peer of the speed benchmarks: its own venv, training and translation.

OpenNMT-py (PyTorch, eager, a Python loop over the target positions when input feeding is on) is
installed unmodified into a throwaway venv under ``build/onmt-venv`` (git-ignored):
``pip install torch==2.13.0`` (pip takes the local CPU wheel of that version), then
``pip install --no-deps OpenNMT-py==3.5.1``, then its run-time dependencies (``DEPENDENCIES``), all
under a constraint that keeps the torch already installed.

It trains the benchmark's reference model on the same tokenised, lower-cased Multi30k as
``bench.bench_train`` (``bench.prepare_multi30k``): embeddings 256, bidirectional LSTM encoder of
512 in total (``brnn``), one-layer LSTM decoder of 512, MLP attention (``global_attention: mlp``),
input feeding, batches of 64 sentences, Adam, label smoothing 0.1, dropout 0.2 (Sockeye's decoder
hidden dropout in our recipe), ``num_workers: 0``, CPU, the benchmark's thread count.

Throughput is measured the way ``bench.bench_train`` measures Sockeye: over windows of 50 updates
after a warm-up. OpenNMT-py logs every ``report_every`` steps the cumulative ``tgt`` tokens/s and
the elapsed time since training started; from two consecutive lines the window's target tokens
(tokens/s x elapsed, differenced) and its duration follow, so the measured rate is real target
tokens (words + ``</s>``, no padding) over the time after the warm-up. Peak RSS comes from GNU time.

Decoding: ``onmt_translate`` with beam 5, batch 32 sentences, same threads, on the 1,014 validation
sentences, with a model this module trained (cached under ``build/onmt-model/``). Output tokens/s
counts the translated tokens plus one ``</s>`` per sentence over the translation time onmt reports
(model loading excluded), or over the whole command when that line is missing.

Usage:
    python -m bench.onmt_peer install
    python -m bench.onmt_peer train --max-updates 300 [--repeats 1]
    python -m bench.onmt_peer translate [--model-updates 1000] [--beam 5] [--batch-size 32]
"""
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import sockeye_peer
from bench.prepare_multi30k import is_fresh, prepare

REPO_ROOT = Path(__file__).resolve().parent.parent
ONMT_VENV = REPO_ROOT / "build" / "onmt-venv"
MODEL_CACHE = REPO_ROOT / "build" / "onmt-model"
# Raw Multi30k, found relative to the repository (shared/ lies beside the checkout).
MULTI30K_DIR = REPO_ROOT.parent / "shared" / "data" / "multi30k"
TORCH = "torch==2.13.0"
ONMT = "OpenNMT-py==3.5.1"
DEPENDENCIES = ["configargparse", "pyyaml", "sacrebleu", "six", "pyonmttok>=1.37,<2", "rapidfuzz",
                "pyahocorasick", "spacy", "fasttext-wheel"]
STAMP_NAME = ".installed"
SPEED_WINDOW = sockeye_peer.SPEED_WINDOW_BATCHES  # report_every: the same 50-update windows as Sockeye
BATCH_SIZE = 64

TRANSLATE_TIME = re.compile(r"Total translation time \(s\):\s*([0-9.]+)")
TRANSLATE_AVERAGE_MS = re.compile(r"Average translation time \(ms\):\s*([0-9.]+)")


def venv_python(venv: Path = ONMT_VENV) -> Path:
    return Path(venv) / "bin" / "python"


def _stamp_text() -> str:
    return json.dumps({"torch": TORCH, "onmt": ONMT, "dependencies": DEPENDENCIES}, sort_keys=True)


def ensure_venv(venv: Path = ONMT_VENV, base_python: str = "python3.11") -> Path:
    """Create the OpenNMT-py venv unless its stamp matches the pinned versions; returns its python."""
    venv = Path(venv)
    stamp, python = venv / STAMP_NAME, venv_python(venv)
    if stamp.exists() and stamp.read_text() == _stamp_text() and python.exists():
        return python
    if not python.exists():
        subprocess.run([shutil.which(base_python) or sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + [TORCH], check=True)
    # Later installs must never replace that torch: pin it with a constraint file.
    constraint = venv / "torch-constraint.txt"
    constraint.write_text(TORCH + "\n")
    subprocess.run(pip + ["-c", str(constraint), "--no-deps", ONMT], check=True)
    subprocess.run(pip + ["-c", str(constraint)] + DEPENDENCIES, check=True)
    check = subprocess.run([str(python), "-c", "import torch, onmt, onmt.bin.train, onmt.bin.translate; "
                            "print(torch.__version__, onmt.__version__)"], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"OpenNMT-py does not import in {venv}:\n{check.stderr[-3000:]}")
    torch_version = check.stdout.split()[0]
    if not torch_version.startswith(TORCH.split("==")[1]):
        raise RuntimeError(f"{venv}: torch {torch_version} installed, {TORCH} expected")
    stamp.write_text(_stamp_text())
    return python


def venv_command(name: str, python: Path) -> list:
    """An onmt console script of the venv (``onmt_train``, ``onmt_translate``, ``onmt_build_vocab``)."""
    return [str(Path(python).parent / name)]


def multi30k():
    """The tokenised corpus of ``bench_train`` (prepared on first use, text only)."""
    return prepare(MULTI30K_DIR, recordio=False)


def reference_settings(max_updates: int, seed: int = 1, report_every: int = SPEED_WINDOW) -> dict:
    """The model and training settings of the reference model in onmt's option names (no paths)."""
    return {
        "src_vocab_size": 50000, "tgt_vocab_size": 50000,  # recordio_tools' defaults: every word, at most 50k
        "src_words_min_frequency": 1, "tgt_words_min_frequency": 1, "share_vocab": False,
        "encoder_type": "brnn", "decoder_type": "rnn", "rnn_type": "LSTM",
        "enc_layers": 1, "dec_layers": 1, "word_vec_size": 256, "hidden_size": 512,
        "global_attention": "mlp", "input_feed": 1, "bridge": False,
        "batch_type": "sents", "batch_size": BATCH_SIZE, "valid_batch_size": BATCH_SIZE,
        "optim": "adam", "learning_rate": 0.0003, "label_smoothing": 0.1, "dropout": [0.2],
        "train_steps": max_updates, "valid_steps": max_updates + 1, "report_every": report_every,
        "num_workers": 0, "seed": seed, "world_size": 1, "gpu_ranks": [],
    }


def reference_config(data, vocab_dir: Path, save_model: Path, max_updates: int, seed: int,
                     report_every: int = SPEED_WINDOW, save_checkpoint_steps: int | None = None) -> dict:
    """``onmt_train`` configuration of the reference model (see the module docstring)."""
    return {
        "data": {"corpus_1": {"path_src": str(data.train_source), "path_tgt": str(data.train_target)}},
        "src_vocab": str(vocab_dir / "vocab.src"), "tgt_vocab": str(vocab_dir / "vocab.tgt"),
        "save_model": str(save_model),
        "save_checkpoint_steps": save_checkpoint_steps or max_updates + 1, "keep_checkpoint": 1,
        **reference_settings(max_updates, seed, report_every),
    }


def write_yaml(path: Path, obj: dict) -> Path:
    """Write ``obj`` as YAML: JSON is YAML, and the main venv needs no YAML package for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")
    return path


def clean_vocabulary(path: Path) -> int:
    """Drop the lines of an onmt vocabulary whose token is or contains whitespace; returns how many.

    ``onmt_build_vocab`` splits on spaces only, so a token such as U+00A0 survives it, but its reader
    splits each line on any whitespace and then fails on that line.
    """
    path = Path(path)
    lines = path.read_bytes().decode("utf-8").split("\n")
    kept = []
    for line in lines:
        if not line:
            continue
        token = line.rsplit("\t", 1)[0]
        if token.split() == [token]:
            kept.append(line)
    path.write_bytes(("\n".join(kept) + "\n").encode("utf-8"))
    return len([line for line in lines if line]) - len(kept)


def onmt_env(threads: int = 2, wait_policy: str | None = "PASSIVE") -> dict:
    """Environment for onmt subprocesses: the benchmark's OpenMP settings, torch on that many threads."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("PYTHONPATH", None)
    env.update(sockeye_peer.omp_env(threads, wait_policy), MKL_NUM_THREADS=str(threads),
               PYTHONWARNINGS="ignore", CUDA_VISIBLE_DEVICES="",
               # torch >= 2.6 loads weights only by default; onmt 3.5 checkpoints (made here, trusted)
               # also hold its options and vocabularies.
               TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    return env


def build_vocab(data, vocab_dir: Path, python: Path, threads: int = 2) -> dict:
    """``onmt_build_vocab`` over the whole training corpus (cached in ``vocab_dir``); returns the sizes."""
    vocab_dir = Path(vocab_dir)
    vocab_dir.mkdir(parents=True, exist_ok=True)
    src, tgt = vocab_dir / "vocab.src", vocab_dir / "vocab.tgt"
    stamp = vocab_dir / ".built"
    inputs = [data.train_source, data.train_target, Path(__file__)]
    if not is_fresh([stamp], inputs):
        config = reference_config(data, vocab_dir, vocab_dir / "unused", 1, 1)
        config.update(save_data=str(vocab_dir / "samples"), overwrite=True, n_sample=-1)
        cfg = write_yaml(vocab_dir / "build_vocab.yaml", config)
        proc = subprocess.run(venv_command("onmt_build_vocab", python) + ["-config", str(cfg)],
                              env=onmt_env(threads), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"onmt_build_vocab failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        dropped = {"src": clean_vocabulary(src), "tgt": clean_vocabulary(tgt)}
        stamp.write_text(json.dumps(dropped))
    sizes = {side: sum(1 for line in path.read_bytes().split(b"\n") if line)
             for side, path in (("src", src), ("tgt", tgt))}
    return {"words": sizes, "dropped_whitespace_tokens": json.loads(stamp.read_text())}


@dataclasses.dataclass(frozen=True)
class StepLine:
    """One onmt report: the ``report_every`` steps ending at ``step``."""
    step: int
    sents: int
    tgt_tokens_per_batch: float
    src_tokens_per_s: float
    tgt_tokens_per_s: float
    elapsed_s: float


# OpenNMT-py 3.5 report, e.g. "Step 50/  300; acc: 10.1; ppl: 900.1; xent: 6.8; lr: 0.00030;
# sents:    3200; bsz:  413/ 401/64; 1234/1190 tok/s;     21 sec;" (bsz: src/tgt tokens/sentences per batch)
STEP_DETAIL = re.compile(r"Step\s+(\d+)/\s*\d+;.*?sents:\s*(\d+); bsz:\s*(\d+)/\s*(\d+)/\s*\d+;\s*"
                         r"(\d+)/\s*(\d+) tok/s;\s*(\d+) sec")


def parse_step_lines(log_text: str) -> list:
    return [StepLine(int(m.group(1)), int(m.group(2)), float(m.group(4)), float(m.group(5)),
                     float(m.group(6)), float(m.group(7))) for m in STEP_DETAIL.finditer(log_text)]


@dataclasses.dataclass(frozen=True)
class OnmtTrainResult:
    """Training speed of one onmt run over the measured (post-warm-up) report windows."""
    target_tokens_per_s: float
    target_tokens_per_s_derived: float
    samples_per_s: float
    updates_per_s: float
    measured_updates: int
    warmup_updates: int
    mean_target_length: float
    peak_rss_mib: float | None
    wall_s: float
    vocabulary: dict


def summarise_training_log(log_text: str, report_every: int, warmup_updates: int, mean_target_len: float,
                           peak_rss_mib=None, wall_s=0.0, vocabulary=None) -> OnmtTrainResult:
    """Speed over the report windows that start after ``warmup_updates``, from onmt's own timing.

    Each window's target tokens are its mean target tokens per batch x ``report_every``; its time is
    those tokens over the window's target tokens/s (onmt times each window from its own start). The
    overall rate is total tokens over total time, as for Sockeye's equal-work windows.
    """
    windows = [w for w in parse_step_lines(log_text) if w.step - report_every >= warmup_updates]
    if not windows:
        raise RuntimeError("onmt log has no step report after the warm-up; raise --max-updates "
                           f"(onmt reports every {report_every} updates)")
    tokens = [w.tgt_tokens_per_batch * report_every for w in windows]
    times = [t / w.tgt_tokens_per_s for t, w in zip(tokens, windows)]
    updates_per_s = len(windows) * report_every / sum(times)
    return OnmtTrainResult(
        target_tokens_per_s=sum(tokens) / sum(times),
        target_tokens_per_s_derived=updates_per_s * BATCH_SIZE * mean_target_len,
        samples_per_s=sum(w.sents for w in windows) / sum(times), updates_per_s=updates_per_s,
        measured_updates=len(windows) * report_every, warmup_updates=warmup_updates,
        mean_target_length=mean_target_len, peak_rss_mib=peak_rss_mib, wall_s=wall_s,
        vocabulary=vocabulary or {})


def train_onmt(data, work_dir, max_updates: int = 300, warmup_updates: int = SPEED_WINDOW, seed: int = 1,
               threads: int = 2, wait_policy: str | None = "PASSIVE", report_every: int = SPEED_WINDOW,
               model_dir: Path | None = None) -> OnmtTrainResult:
    """Train the reference model for ``max_updates`` with ``onmt_train``; speed after ``warmup_updates``.

    ``data`` is ``bench.prepare_multi30k.prepare()``'s result. The log stays in
    ``work_dir/onmt_train_<seed>.log``. With ``model_dir`` the final model is kept there
    (``model_step_<max_updates>.pt``); otherwise it is deleted.
    """
    python = ensure_venv()
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    vocab_dir = Path(data.output_dir) / "onmt-vocab"
    vocabulary = build_vocab(data, vocab_dir, python, threads)
    keep = model_dir is not None
    model_dir = Path(model_dir) if keep else Path(tempfile.mkdtemp(prefix="onmt_model_", dir=work_dir))
    model_dir.mkdir(parents=True, exist_ok=True)
    config = reference_config(data, vocab_dir, model_dir / "model", max_updates, seed, report_every,
                              save_checkpoint_steps=max_updates if keep else None)
    cfg = write_yaml(work_dir / f"onmt_train_{seed}.yaml", config)
    run = sockeye_peer.run_measured(venv_command("onmt_train", python) + ["-config", str(cfg)],
                                    onmt_env(threads, wait_policy), work_dir / f"onmt_train_{seed}.log")
    if not keep:
        shutil.rmtree(model_dir, ignore_errors=True)
    if run.returncode != 0:
        raise RuntimeError(f"onmt_train failed (exit {run.returncode}); log: {run.log_path}\n"
                           + run.log_text()[-3000:])
    return summarise_training_log(run.log_text(), report_every, warmup_updates,
                                  sockeye_peer.mean_target_length(data.train_target), run.peak_rss_mib,
                                  run.wall_s, vocabulary)


def cached_model(data, updates: int = 1000, seed: int = 1, threads: int = 2,
                 wait_policy: str | None = "PASSIVE") -> Path:
    """A reference model trained ``updates`` steps, cached under ``build/onmt-model/``; returns the .pt."""
    model_dir = MODEL_CACHE / f"updates{updates}_seed{seed}"
    model = model_dir / f"model_step_{updates}.pt"
    if model.exists():
        return model
    tmp = MODEL_CACHE / f".tmp_updates{updates}_seed{seed}"
    shutil.rmtree(tmp, ignore_errors=True)
    report_every = min(SPEED_WINDOW, updates)
    result = train_onmt(data, tmp / "logs", updates, warmup_updates=0, seed=seed, threads=threads,
                        wait_policy=wait_policy, report_every=report_every, model_dir=tmp)
    (tmp / "train_result.json").write_text(json.dumps(dataclasses.asdict(result), indent=2))
    if not (tmp / model.name).exists():
        raise RuntimeError(f"onmt_train wrote no {model.name} in {tmp}")
    shutil.rmtree(model_dir, ignore_errors=True)
    os.replace(tmp, model_dir)
    return model


def count_output_tokens(path: Path) -> tuple:
    """(sentences, tokens + one </s> per sentence) of a translation file."""
    sentences = tokens = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            sentences += 1
            tokens += len(line.split()) + 1
    return sentences, tokens


def onmt_translate_speed(model, source_file, beam: int = 5, batch_size: int = 32, threads: int = 2,
                         output_file=None, wait_policy: str | None = "PASSIVE",
                         max_length: int = 100) -> dict:
    """Translate ``source_file`` with ``onmt_translate`` (CPU); output tokens/s and sentences/s.

    Rates use the translation time onmt reports (``-report_time``: model loading excluded); the
    whole command's wall time is recorded too. ``max_length`` 100 is our ``max_seq_len_target``.
    """
    python = ensure_venv()
    with tempfile.TemporaryDirectory(prefix="onmt_translate_") as tmp:
        out = Path(output_file) if output_file else Path(tmp) / "hyp.txt"
        cmd = venv_command("onmt_translate", python) + [
            "-model", str(model), "-src", str(source_file), "-output", str(out), "-gpu", "-1",
            "-beam_size", str(beam), "-batch_size", str(batch_size), "-batch_type", "sents",
            "-max_length", str(max_length), "-report_time"]
        run = sockeye_peer.run_measured(cmd, onmt_env(threads, wait_policy), Path(tmp) / "translate.log")
        text = run.log_text()
        if run.returncode != 0:
            raise RuntimeError(f"onmt_translate failed (exit {run.returncode}):\n{text[-3000:]}")
        sentences, tokens = count_output_tokens(out)
    # onmt prints the total to 0.1 s and the mean per sentence to 0.1 ms: the mean is the finer clock.
    total, average = TRANSLATE_TIME.search(text), TRANSLATE_AVERAGE_MS.search(text)
    match = total or average
    if average and sentences:
        translate_s = float(average.group(1)) * sentences / 1000.0
    else:
        translate_s = float(total.group(1)) if total else run.wall_s
    return {"sentences": sentences, "output_tokens": tokens, "translate_s": translate_s,
            "timing": "onmt translation time" if match else "whole command",
            "sentences_per_s": sentences / translate_s, "output_tokens_per_s": tokens / translate_s,
            "wall_s": run.wall_s, "peak_rss_mib": run.peak_rss_mib, "beam_size": beam,
            "batch_size": batch_size, "max_length": max_length, "threads": threads,
            "omp_wait_policy": wait_policy or "default"}


def _main_train(args) -> None:
    data = multi30k()
    sockeye_peer.print_training_runs(
        args, "onmt_bench_", lambda work, seed: train_onmt(data, work, args.max_updates, args.warmup_updates,
                                                           seed=seed, threads=args.threads,
                                                           report_every=args.report_every))


def _main_translate(args) -> None:
    data = multi30k()
    model = Path(args.model) if args.model else cached_model(data, args.model_updates, threads=args.threads)
    source = Path(args.source) if args.source else data.val_source
    result = onmt_translate_speed(model, source, args.beam, args.batch_size, args.threads)
    result["model"] = os.path.relpath(model, REPO_ROOT)
    result["source"] = os.path.relpath(source, REPO_ROOT)
    print(json.dumps(result))


def main(argv=None) -> int:
    parser, sub, train = sockeye_peer.peer_parser(__doc__.split("\n")[0], "OpenNMT-py", SPEED_WINDOW)
    train.add_argument("--report-every", type=int, default=SPEED_WINDOW, help="speed window (updates)")
    train.add_argument("--threads", type=int, default=2)
    translate = sub.add_parser("translate", help="measure onmt_translate output tokens/s on Multi30k val")
    translate.add_argument("--model", help="an onmt .pt (default: the cached reference model)")
    translate.add_argument("--model-updates", type=int, default=1000,
                           help="updates of the cached model (trained on first use)")
    translate.add_argument("--source", help="source file (default: the 1,014 tokenised validation sentences)")
    translate.add_argument("--beam", type=int, default=5)
    translate.add_argument("--batch-size", type=int, default=32)
    translate.add_argument("--threads", type=int, default=2)
    return sockeye_peer.run_peer_command(parser.parse_args(argv), ensure_venv, _main_train, _main_translate)


if __name__ == "__main__":
    sys.exit(main())
