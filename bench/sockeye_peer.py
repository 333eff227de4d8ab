"""Sockeye 1.18 as the peer for the speed benchmarks: its own venv, training and translation CLIs.

Sockeye 1.18 (MXNet Module API) is the engine inside Amazon's built-in Seq2Seq. It is installed,
unmodified, into a separate venv (``.venv-sockeye``, git-ignored) because it pins older packages:
``pip install mxnet==1.9.1 'numpy<1.24' pyyaml portalocker 'sacrebleu==1.3.6'`` then
``pip install --no-deps sockeye==1.18.106``. It runs on Python 3.11 as installed.

Throughput: Sockeye logs every 50 batches ``Speed: S samples/sec T tokens/sec U updates/sec``,
where T counts *padded source* tokens. We derive target tokens/s (target words + ``</s>``, no
padding) as S x the mean target length of the training data (including ``</s>``): with sentence
batches drawn at random from all buckets this is the expected number of real target tokens.

Usage:
    python -m bench.sockeye_peer install
    python -m bench.sockeye_peer train --max-updates 300
    python -m bench.sockeye_peer translate MODEL_DIR SOURCE_FILE [--beam 5]
"""
import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SOCKEYE_VENV = REPO_ROOT / ".venv-sockeye"
SOCKEYE_VERSION = "1.18.106"
DEPENDENCIES = ["mxnet==1.9.1", "numpy<1.24", "pyyaml", "portalocker", "sacrebleu==1.3.6"]
STAMP_NAME = ".installed"
SPEED_WINDOW_BATCHES = 50  # Sockeye's C.MEASURE_SPEED_EVERY

# The reference model of the benchmark: emb 256, bi-LSTM encoder 512 in total, LSTM decoder 512,
# MLP attention, 64-sentence batches, Adam. Everything else stays at Sockeye's defaults.
REFERENCE_MODEL_ARGS = [
    "--use-cpu", "--encoder", "rnn", "--decoder", "rnn", "--num-layers", "1:1",
    "--rnn-cell-type", "lstm", "--rnn-num-hidden", "512", "--num-embed", "256:256",
    "--rnn-attention-type", "mlp", "--batch-type", "sentence", "--batch-size", "64",
    "--optimizer", "adam", "--decode-and-evaluate", "0",
]

SPEED_LINE = re.compile(r"Epoch\[(\d+)\] Batch \[(\d+)\]\s+Speed: ([0-9.]+) samples/sec "
                        r"([0-9.]+) tokens/sec ([0-9.]+) updates/sec")
TRANSLATE_LINE = re.compile(r"Processed (\d+) lines\. Total time: ([0-9.]+), sec/sent: ([0-9.]+), "
                            r"sent/sec: ([0-9.]+)")
MAX_RSS_LINE = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


def venv_python(venv: Path = SOCKEYE_VENV) -> Path:
    return Path(venv) / "bin" / "python"


def _stamp_text() -> str:
    return json.dumps({"dependencies": DEPENDENCIES, "sockeye": SOCKEYE_VERSION}, sort_keys=True)


def ensure_venv(venv: Path = SOCKEYE_VENV, base_python: str = "python3.11") -> Path:
    """Create the Sockeye venv unless its stamp matches the pinned versions; returns its python."""
    venv = Path(venv)
    stamp = venv / STAMP_NAME
    python = venv_python(venv)
    if stamp.exists() and stamp.read_text() == _stamp_text() and python.exists():
        return python
    if not python.exists():
        subprocess.run([shutil.which(base_python) or sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + DEPENDENCIES, check=True)
    subprocess.run(pip + ["--no-deps", f"sockeye=={SOCKEYE_VERSION}"], check=True)
    check = subprocess.run([str(python), "-c", "import sockeye.train, sockeye.translate; "
                            "print(sockeye.__version__)"], capture_output=True, text=True)
    if check.returncode != 0 or check.stdout.strip() != SOCKEYE_VERSION:
        raise RuntimeError(f"Sockeye does not import in {venv}:\n{check.stderr[-2000:]}")
    stamp.write_text(_stamp_text())
    return python


def omp_env(threads: int = 2, wait_policy: str | None = "PASSIVE") -> dict:
    """OpenMP settings shared by both engines of a benchmark.

    ``PASSIVE`` makes idle OpenMP threads sleep instead of spinning: on a machine shared with other
    work, spinning threads compete for the cores and slow training several times over.
    ``None`` leaves the runtime's default (spinning for a while).
    """
    env = {"OMP_NUM_THREADS": str(threads)}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    return env


def sockeye_env(threads: int = 2, wait_policy: str | None = "PASSIVE") -> dict:
    """Environment for Sockeye subprocesses: OpenMP settings of ``omp_env``, quiet MXNet."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.update(omp_env(threads, wait_policy), MXNET_SUBGRAPH_VERBOSE="0", PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    return env


def train_command(train_source, train_target, val_source, val_target, output_dir,
                  max_updates: int, seed: int = 1, checkpoint_interval: int | None = None,
                  python: Path | None = None) -> list:
    """``sockeye.train`` command line for the reference model on tokenised parallel text.

    Without ``checkpoint_interval`` no checkpoint falls inside the run (pure training speed).
    """
    interval = checkpoint_interval if checkpoint_interval else max_updates + 1
    return [str(python or venv_python()), "-m", "sockeye.train",
            "--source", str(train_source), "--target", str(train_target),
            "--validation-source", str(val_source), "--validation-target", str(val_target),
            "--output", str(output_dir), "--overwrite-output",
            *REFERENCE_MODEL_ARGS,
            "--max-updates", str(max_updates), "--checkpoint-interval", str(interval),
            "--seed", str(seed)]


@dataclasses.dataclass(frozen=True)
class SpeedWindow:
    """One Sockeye speed line: rates over the ``SPEED_WINDOW_BATCHES`` batches ending at ``batch``."""
    batch: int
    samples_per_s: float
    padded_source_tokens_per_s: float
    updates_per_s: float


def parse_speed_windows(log_text: str) -> list:
    """All Sockeye ``Speed:`` lines of a training log, in order."""
    return [SpeedWindow(int(m.group(2)), float(m.group(3)), float(m.group(4)), float(m.group(5)))
            for m in SPEED_LINE.finditer(log_text)]


def mean_target_length(path) -> float:
    """Mean target length in tokens including ``</s>`` over the non-empty lines of ``path``."""
    tokens = lines = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            n = len(line.split())
            if n:
                tokens += n + 1
                lines += 1
    if not lines:
        raise ValueError(f"{path}: no non-empty lines")
    return tokens / lines


def aggregate_rate(rates) -> float:
    """Overall rate of equal-work windows (harmonic mean of their rates)."""
    rates = list(rates)
    return len(rates) / sum(1.0 / r for r in rates)


@dataclasses.dataclass(frozen=True)
class MeasuredRun:
    """A finished subprocess: exit status, wall seconds, peak RSS (MiB, largest process) and log."""
    returncode: int
    wall_s: float
    peak_rss_mib: float | None
    log_path: Path

    def log_text(self) -> str:
        return Path(self.log_path).read_text(encoding="utf-8", errors="replace")


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL it after ``grace_s`` seconds."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that ``run_measured`` cleans up its process group."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def run_measured(cmd, env, log_path, cwd=None, timeout=None) -> MeasuredRun:
    """Run ``cmd`` under ``/usr/bin/time -v``; stdout+stderr go to ``log_path``.

    Peak RSS is GNU time's maximum resident set size: the largest of the process and its
    waited-for descendants (the training processes here are single processes).
    """
    log_path = Path(log_path)
    rusage_path = log_path.with_suffix(".rusage")
    timer = ["/usr/bin/time", "-v", "-o", str(rusage_path)] if Path("/usr/bin/time").exists() else []
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        # Own process group: if the benchmark is interrupted, the whole measured tree goes with it.
        proc = subprocess.Popen(timer + [str(c) for c in cmd], env=env, cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except BaseException:
            stop_process_group(proc)
            raise
    wall = time.monotonic() - start
    peak = None
    if rusage_path.exists():
        match = MAX_RSS_LINE.search(rusage_path.read_text())
        peak = int(match.group(1)) / 1024.0 if match else None
    return MeasuredRun(proc.returncode, wall, peak, log_path)


@dataclasses.dataclass(frozen=True)
class SockeyeTrainResult:
    """Training speed of one Sockeye run over the measured (post-warm-up) windows."""
    samples_per_s: float
    target_tokens_per_s: float
    updates_per_s: float
    padded_source_tokens_per_s: float
    measured_updates: int
    warmup_updates: int
    mean_target_length: float
    peak_rss_mib: float | None
    wall_s: float


def summarise_training_log(log_text: str, mean_target_len: float, warmup_updates: int,
                           peak_rss_mib=None, wall_s=0.0) -> SockeyeTrainResult:
    """Speed over every Sockeye window that starts after ``warmup_updates`` updates."""
    windows = [w for w in parse_speed_windows(log_text)
               if w.batch - SPEED_WINDOW_BATCHES >= warmup_updates]
    if not windows:
        raise RuntimeError("Sockeye log has no speed line after the warm-up; "
                           "raise --max-updates (speed is logged every 50 updates)")
    samples = aggregate_rate(w.samples_per_s for w in windows)
    return SockeyeTrainResult(
        samples_per_s=samples, target_tokens_per_s=samples * mean_target_len,
        updates_per_s=aggregate_rate(w.updates_per_s for w in windows),
        padded_source_tokens_per_s=aggregate_rate(w.padded_source_tokens_per_s for w in windows),
        measured_updates=len(windows) * SPEED_WINDOW_BATCHES, warmup_updates=warmup_updates,
        mean_target_length=mean_target_len, peak_rss_mib=peak_rss_mib, wall_s=wall_s)


def train_sockeye(data, work_dir, max_updates: int = 300, warmup_updates: int = SPEED_WINDOW_BATCHES,
                  seed: int = 1, threads: int = 2, keep_model: bool = False,
                  checkpoint_interval: int | None = None,
                  wait_policy: str | None = "PASSIVE") -> SockeyeTrainResult:
    """Train the reference model for ``max_updates`` and measure speed after ``warmup_updates``.

    ``data`` has ``train_source``, ``train_target``, ``val_source``, ``val_target`` (tokenised text),
    e.g. ``bench.prepare_multi30k.layout()``. The log stays in ``work_dir/sockeye_train_<seed>.log``.
    With ``keep_model`` and a ``checkpoint_interval`` the model stays in ``work_dir/sockeye_model_<seed>``
    with a ``params.best`` that ``sockeye_translate_speed`` can use (checkpoints cost training time).
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    model_dir = work_dir / f"sockeye_model_{seed}"
    cmd = train_command(data.train_source, data.train_target, data.val_source, data.val_target,
                        model_dir, max_updates, seed=seed, checkpoint_interval=checkpoint_interval,
                        python=ensure_venv())
    run = run_measured(cmd, sockeye_env(threads, wait_policy), work_dir / f"sockeye_train_{seed}.log")
    if not keep_model:
        shutil.rmtree(model_dir, ignore_errors=True)
    if run.returncode != 0:
        raise RuntimeError(f"sockeye.train failed (exit {run.returncode}); log: {run.log_path}\n"
                           + run.log_text()[-3000:])
    return summarise_training_log(run.log_text(), mean_target_length(data.train_target),
                                  warmup_updates, run.peak_rss_mib, run.wall_s)


def sockeye_translate_speed(model_dir, source_file, beam: int = 5, batch_size: int = 1,
                            threads: int = 2, output_file=None, wait_policy: str | None = "PASSIVE") -> dict:
    """Translate ``source_file`` (tokenised, one sentence a line) with a trained Sockeye model.

    Returns ``sentences_per_s`` as Sockeye measures it (translation time only, model loading
    excluded), plus ``wall_s`` of the whole command, ``peak_rss_mib`` and the settings.
    """
    model_dir, source_file = Path(model_dir), Path(source_file)
    if not (model_dir / "params.best").exists():
        raise FileNotFoundError(f"{model_dir}: no params.best (train with a checkpoint interval)")
    with tempfile.TemporaryDirectory(prefix="sockeye_translate_") as tmp:
        out = Path(output_file) if output_file else Path(tmp) / "hyp.txt"
        cmd = [str(ensure_venv()), "-m", "sockeye.translate", "--models", str(model_dir),
               "--input", str(source_file), "--output", str(out), "--use-cpu",
               "--beam-size", str(beam), "--batch-size", str(batch_size)]
        run = run_measured(cmd, sockeye_env(threads, wait_policy), Path(tmp) / "translate.log")
        text = run.log_text()
    if run.returncode != 0:
        raise RuntimeError(f"sockeye.translate failed (exit {run.returncode}):\n{text[-3000:]}")
    match = TRANSLATE_LINE.search(text)
    if not match:
        raise RuntimeError("sockeye.translate log has no 'Processed N lines' summary")
    return {"sentences": int(match.group(1)), "translate_s": float(match.group(2)),
            "sentences_per_s": float(match.group(4)), "wall_s": run.wall_s,
            "peak_rss_mib": run.peak_rss_mib, "beam_size": beam, "batch_size": batch_size,
            "threads": threads, "omp_wait_policy": wait_policy or "default"}


# ----- the command line, shared with bench.onmt_peer -----

def peer_parser(description: str, engine: str, warmup_updates: int):
    """The command line of a peer: `install`, and `train` with the options every peer's training takes;
    returns (parser, its subparsers, the train parser) for the peer to add its own."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help=f"create or check the {engine} venv")
    train = sub.add_parser("train", help=f"measure {engine}'s training speed on Multi30k")
    train.add_argument("--max-updates", type=int, default=300)
    train.add_argument("--warmup-updates", type=int, default=warmup_updates)
    train.add_argument("--repeats", type=int, default=1)
    train.add_argument("--work-dir", help="keep logs here (default: a temp dir)")
    return parser, sub, train


def run_peer_command(args, install, train, translate) -> int:
    """Do what peer_parser's parsed `args` ask: install() (its result printed), train(args) or translate(args)."""
    exit_on_sigterm()
    if args.command == "install":
        print(install())
    elif args.command == "train":
        train(args)
    else:
        translate(args)
    return 0


def print_training_runs(args, temp_prefix: str, train_one) -> None:
    """train_one(work_dir, seed) for seeds 1..args.repeats in --work-dir (default: a temporary directory);
    each run printed as JSON, then the median target tokens/s."""
    with tempfile.TemporaryDirectory(prefix=temp_prefix) as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        results = [train_one(work, seed) for seed in range(1, args.repeats + 1)]
    for r in results:
        print(json.dumps(dataclasses.asdict(r)))
    print(f"median target tokens/s: {statistics.median(r.target_tokens_per_s for r in results):.1f}")


def _main_train(args) -> None:
    from bench.prepare_multi30k import prepare
    data = prepare(recordio=False)
    print_training_runs(args, "sockeye_bench_",
                        lambda work, seed: train_sockeye(data, work, args.max_updates, args.warmup_updates, seed=seed))


def _main_translate(args) -> None:
    print(json.dumps(sockeye_translate_speed(args.model_dir, args.source_file, args.beam, args.batch_size)))


def main(argv=None) -> int:
    parser, sub, _ = peer_parser(__doc__.split("\n")[0], "Sockeye", SPEED_WINDOW_BATCHES)
    translate = sub.add_parser("translate", help="measure sockeye.translate sentences/s")
    translate.add_argument("model_dir")
    translate.add_argument("source_file")
    translate.add_argument("--beam", type=int, default=5)
    translate.add_argument("--batch-size", type=int, default=1)
    return run_peer_command(parser.parse_args(argv), ensure_venv, _main_train, _main_translate)


if __name__ == "__main__":
    sys.exit(main())
