"""GPU smoke check (``make gpu-smoke``): on a machine with an NVIDIA GPU and its driver, in one command and no Docker.

1. finds the GPUs with ``nvidia-smi`` (none: says so and exits 0) and their compute capability;
2. installs the GPU requirements into a venv of its own, ``build/gpu-venv`` (cached by a stamp):
   ``requirements.txt`` without ``mxnet``, plus ``container/requirements-gpu.txt`` (``mxnet-cu117`` and
   NVIDIA's CUDA 11.7 libraries from PyPI, as the GPU image installs them) and the test runner; the CUDA
   libraries are found through ``LD_LIBRARY_PATH`` (the image registers them with ``ld.so.conf.d``);
3. checks that MXNet's kernels run on gpu(0) and reports how (``native`` code for compute capability up to 8.7,
   ``ptx-jit`` for newer GPUs, e.g. Ada 8.9 and Hopper 9.0, which CUDA 11.7 predates); then runs the tests marked
   ``gpu`` (``tests/gpu``);
4. trains the reference model of ``bench.bench_train`` (embeddings 256, bi-LSTM 512, MLP attention,
   batch 64, Adam) for 200 updates on ``gpu:0`` in fp32 and in fp16, through the training job;
5. decodes the 1,014 Multi30k validation sentences with the fp32 model (``Translator``, beam 5, batch 32)
   and times single sentences;
6. starts ``container/serve`` on the fp32 model and sends one-sentence requests;

then prints target tokens/s, output tokens/s, sentences/s and latencies, and writes
``bench/results/gpu_smoke.json``. Meant to finish in under 5 minutes once the venv exists.

Usage: ``python3 bench/gpu_smoke.py [--updates 200] [--skip-tests] [--find-links DIR] [--no-index]``
(``--find-links`` / ``--no-index``: install from local wheels where the machine has no package index).
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.results_io import relative

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script (python3 bench/gpu_smoke.py) as well as with -m
    sys.path.insert(0, str(REPO_ROOT))

GPU_VENV = REPO_ROOT / "build" / "gpu-venv"
WORK_DIR = REPO_ROOT / "build" / "gpu-smoke"
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "gpu_smoke.json"
REQUIREMENT_FILES = [REPO_ROOT / "requirements.txt", REPO_ROOT / "requirements-dev.txt",
                     REPO_ROOT / "container" / "requirements-gpu.txt"]
BUDGET_S = 300
# --cpu-rehearsal: the same steps on the CPU (tiny runs, no fp16), to check this script where no GPU is.
REHEARSAL = {"on": False}
SERVE_REQUESTS = 30
LATENCY_SENTENCES = 30


def detect_gpus() -> list:
    """``nvidia-smi -L`` lines (``GPU 0: ...``); empty without the tool, a driver or a GPU."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        listing = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if listing.returncode != 0:
        return []
    return [line.strip() for line in listing.stdout.splitlines() if line.startswith("GPU ")]


# CUDA 11.7 (mxnet-cu117 1.9.1) compiles for GPU architectures up to compute capability 8.7; sm_89 (Ada: L4,
# L40S) and sm_90 (Hopper: H100, H200) arrived with CUDA 11.8. On those GPUs MXNet's kernels can only run through
# the driver's JIT compilation of PTX embedded in libmxnet.so, if the wheel embeds any.
NEWEST_NATIVE_CAPABILITY = (8, 7)


def gpu_architectures() -> list:
    """One dict per GPU from ``nvidia-smi``: index, name, compute_capability ("9.0"; None where the driver is too
    old to report it), driver; empty without the tool, a driver or a GPU."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        query = subprocess.run([tool, "--query-gpu=index,name,compute_cap,driver_version",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if query.returncode != 0:  # a driver without the compute_cap field: ask without it
        query = subprocess.run([tool, "--query-gpu=index,name,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=60)
        return [dict(zip(("index", "name", "driver"), [f.strip() for f in line.split(",")]),
                     compute_capability=None) for line in query.stdout.splitlines() if line.strip()]
    return parse_gpu_query(query.stdout)


def parse_gpu_query(text: str) -> list:
    """Parse ``nvidia-smi --query-gpu=index,name,compute_cap,driver_version --format=csv,noheader``."""
    gpus = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 4:
            continue
        index, name, capability, driver = fields
        gpus.append({"index": index, "name": name, "driver": driver,
                     "compute_capability": capability if capability[:1].isdigit() else None})
    return gpus


def kernel_support(compute_capability) -> str:
    """How mxnet-cu117 runs on a GPU of this compute capability ("8.6"): "native" (compiled for it or an older
    architecture of the same major version), "ptx-jit" (newer than CUDA 11.7 knows: only JIT-compiled PTX can
    run, if libmxnet.so carries any) or "unknown"."""
    if not compute_capability:
        return "unknown"
    major, minor = (int(part) for part in str(compute_capability).split(".")[:2])
    return "native" if (major, minor) <= NEWEST_NATIVE_CAPABILITY else "ptx-jit"


def requirement_lines() -> list:
    """The GPU venv's requirements: requirements.txt without mxnet (as the Dockerfile does for DEVICE=gpu),
    the GPU list and the test runner of requirements-dev.txt."""
    lines = []
    for path in REQUIREMENT_FILES:
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#") or line.startswith("-r"):
                continue
            name = line.split(";")[0].split("=")[0].split("<")[0].split(">")[0].split("[")[0].strip().lower()
            if name == "mxnet":
                continue
            if line not in lines:
                lines.append(line)
    return lines


def venv_python(venv: Path = GPU_VENV) -> Path:
    return Path(venv) / "bin" / "python"


def ensure_venv(venv: Path = GPU_VENV, find_links=None, no_index=False) -> Path:
    """Create ``venv`` with the GPU requirements unless its stamp matches them; returns its python."""
    venv = Path(venv)
    lines = requirement_lines()
    stamp_text = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    stamp, python = venv / ".installed", venv_python(venv)
    if stamp.exists() and stamp.read_text() == stamp_text and python.exists():
        return python
    if not python.exists():
        base = shutil.which("python3.11") or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    requirements = venv / "requirements-gpu-smoke.txt"
    requirements.write_text("\n".join(lines) + "\n")
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    if find_links:
        pip += ["--find-links", str(find_links)]
    if no_index:
        pip += ["--no-index"]
    print(f"installing the GPU requirements into {relative(venv)} (first run: a few GB of CUDA libraries)",
          flush=True)
    subprocess.run(pip + ["--quiet", "-r", str(requirements)], check=True)
    stamp.write_text(stamp_text)
    return python


def nvidia_library_dirs(venv: Path = GPU_VENV) -> list:
    """The ``lib`` folders of NVIDIA's PyPI packages in the venv (what the image lists in ld.so.conf.d)."""
    return sorted(glob.glob(str(Path(venv) / "lib" / "python3*" / "site-packages" / "nvidia" / "*" / "lib")))


def gpu_environment(venv: Path = GPU_VENV) -> dict:
    env = dict(os.environ)
    dirs = nvidia_library_dirs(venv)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(dirs + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
    env["PATH"] = f"{Path(venv) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
    env.setdefault("OMP_NUM_THREADS", "2")
    env.pop("VIRTUAL_ENV", None)
    return env


# ----- inside the GPU venv -----
class Phases:
    """Wall time of each phase, printed as it ends."""

    def __init__(self):
        self.start = time.monotonic()
        self.times = {}

    def run(self, name, func):
        print(f"\n== {name}", flush=True)
        begin = time.monotonic()
        try:
            return func()
        finally:
            self.times[name] = time.monotonic() - begin
            print(f"   ({self.times[name]:.0f} s; {time.monotonic() - self.start:.0f} s so far)", flush=True)


def context():
    import mxnet as mx
    return mx.cpu() if REHEARSAL["on"] else mx.gpu(0)


def check_mxnet_gpu() -> dict:
    import mxnet as mx
    if REHEARSAL["on"]:
        return {"mxnet": mx.__version__, "gpus": 0, "rehearsal": True}
    count = mx.context.num_gpus()
    if count == 0:
        raise RuntimeError("mxnet-cu117 sees no GPU (driver too old for CUDA 11.7, or libcuda.so.1 missing)")
    architectures = gpu_architectures()
    capability = architectures[0]["compute_capability"] if architectures else None
    support = kernel_support(capability)
    print(f"   gpu(0): compute capability {capability or 'unknown'}; mxnet-cu117 kernels: {support}", flush=True)
    started = time.monotonic()
    try:  # an elementwise kernel, a reduction and a cuBLAS matrix product
        ones = mx.nd.ones((64, 64), ctx=mx.gpu(0))
        value = float(mx.nd.dot(ones * 2, ones).sum().asscalar())
    except mx.base.MXNetError as err:
        hint = (f" (mxnet-cu117 1.9.1 has no kernels for compute capability {capability or 'unknown'}"
                f"{' and no PTX the driver could compile for it' if support == 'ptx-jit' else ''})"
                if "no kernel image" in str(err) else "")
        raise RuntimeError(f"a computation on gpu(0) failed{hint}: {str(err)[:800]}") from None
    first_seconds = time.monotonic() - started
    if value != 64 * 64 * 128.0:
        raise RuntimeError(f"a GPU computation returned {value}, expected {64 * 64 * 128.0}")
    return {"mxnet": mx.__version__, "gpus": count, "cudnn": bool(mx.runtime.Features().is_enabled("CUDNN")),
            "compute_capability": capability, "kernel_support": support, "kernels_ran": True,
            "first_kernels_seconds": round(first_seconds, 2)}  # long (minutes) when the driver JIT-compiles PTX


def run_gpu_tests(timeout_s: int) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/gpu", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                          capture_output=True, text=True, timeout=timeout_s)
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(proc.stdout[-3000:] if proc.returncode else tail, flush=True)
    return {"returncode": proc.returncode, "summary": tail}


def train_reference(data, precision: str, updates: int, warmup: int, log_every: int) -> dict:
    from bench import sockeye_peer
    from bench.bench_train import REFERENCE_HYPERPARAMETERS, make_job_tree, summarise_ours
    base = WORK_DIR / f"train-{precision}"
    shutil.rmtree(base, ignore_errors=True)
    hps = dict(REFERENCE_HYPERPARAMETERS, devices="cpu" if REHEARSAL["on"] else "gpu:0", precision=precision, max_num_batches=str(updates),
               checkpoint_frequency_num_batches=str(updates), log_frequency_num_batches=str(log_every), seed="1")
    make_job_tree(base, data.rec_dir, hps)
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), PYTHONPATH=str(REPO_ROOT))
    run = sockeye_peer.run_measured([sys.executable, str(REPO_ROOT / "container" / "train")], env,
                                    WORK_DIR / f"train-{precision}.log", cwd=REPO_ROOT)
    if run.returncode != 0:
        failure = base / "output" / "failure"
        reason = failure.read_text()[:1500] if failure.exists() else run.log_text()[-3000:]
        raise RuntimeError(f"training job ({precision}) failed with exit {run.returncode}: {reason}")
    result = summarise_ours(run.log_text(), log_every, warmup, sockeye_peer.mean_target_length(data.train_target),
                            run.peak_rss_mib, run.wall_s)
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    result["validation_perplexity"] = metrics[-1].get("validation_perplexity") if metrics else None
    result["base"] = relative(base)
    print(f"   {precision}: {result['target_tokens_per_s']:.0f} target tokens/s, {result['updates_per_s']:.2f} "
          f"updates/s, validation perplexity {result['validation_perplexity']}, wall {run.wall_s:.0f} s",
          flush=True)
    return result


def decode_validation(model_dir: Path, source_file: Path) -> dict:
    from seq2seq.inference.translator import DecodeOptions, Translator
    translator = Translator.load(str(model_dir), context=context())
    sentences = [line.strip() for line in open(source_file, encoding="utf-8")]
    if REHEARSAL["on"]:
        sentences = sentences[:40]
    options = DecodeOptions(beam_size=5)
    translator.translate_text(sentences[:32], options)  # builds the programs of the common shapes
    start = time.perf_counter()
    results = translator.translate_text(sentences, options)
    batch_s = time.perf_counter() - start
    tokens = sum(len(r.target_ids) + 1 for r in results)
    latencies = []
    for sentence in sentences[:LATENCY_SENTENCES]:
        begin = time.perf_counter()
        translator.translate_text([sentence], options)
        latencies.append(1000 * (time.perf_counter() - begin))
    out = {"sentences": len(sentences), "beam_size": 5, "batch_sentences": translator.batch_sentences,
           "seconds": batch_s, "sentences_per_s": len(sentences) / batch_s, "output_tokens_per_s": tokens / batch_s,
           "one_sentence_ms_median": statistics.median(latencies), "one_sentence_ms_max": max(latencies)}
    print(f"   {out['sentences_per_s']:.1f} sentences/s, {out['output_tokens_per_s']:.0f} output tokens/s; one "
          f"sentence {out['one_sentence_ms_median']:.1f} ms median", flush=True)
    return out


def serve_requests(base: Path, source_file: Path) -> dict:
    import requests
    from bench.serve_process import ServeProcess
    sentences = [line.strip() for line in open(source_file, encoding="utf-8")][:SERVE_REQUESTS]
    extra = {"SEQ2SEQ_NUM_GPUS": "0", "SAGEMAKER_MODEL_SERVER_WORKERS": "1"} if REHEARSAL["on"] else {}
    with ServeProcess(base, WORK_DIR / "serve.log", startup_timeout_s=180, **extra) as server:
        settings = server.settings()
        url = server.url + "/invocations"
        first = requests.post(url, json={"instances": [{"data": sentences[0]}]}, timeout=60)
        if first.status_code != 200:
            raise RuntimeError(f"/invocations answered {first.status_code}: {first.text[:500]}")
        example = first.json()["predictions"][0]["target"]
        latencies, errors = [], 0
        for sentence in sentences:
            begin = time.perf_counter()
            answer = requests.post(url, json={"instances": [{"data": sentence}]}, timeout=60)
            latencies.append(1000 * (time.perf_counter() - begin))
            errors += answer.status_code != 200
    latencies.sort()
    out = {"requests": len(latencies), "errors": errors, "p50_ms": statistics.median(latencies),
           "p99_ms": latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))],
           "example": {"source": sentences[0], "target": example}, "server": settings}
    print(f"   {out['requests']} one-sentence requests: p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms, "
          f"{errors} errors; '{sentences[0]}' -> '{example}'", flush=True)
    return out


def inside(args) -> int:
    from bench.results_io import write_json_atomically
    from bench.onmt_peer import MULTI30K_DIR
    from bench.prepare_multi30k import prepare
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    phases = Phases()
    result = {"benchmark": "gpu_smoke" + ("_cpu_rehearsal" if REHEARSAL["on"] else ""),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "gpus": detect_gpus(),
              "architectures": [dict(gpu, kernel_support=kernel_support(gpu["compute_capability"]))
                                for gpu in gpu_architectures()],
              "updates": args.updates, "failures": []}

    def attempt(name, func):
        try:
            result[name] = phases.run(name, func)
        except Exception as err:  # report every phase, whatever failed before
            print(f"   FAILED: {err}", flush=True)
            result["failures"].append(f"{name}: {str(err)[:1500]}")

    attempt("mxnet", check_mxnet_gpu)
    if result["failures"]:
        print("\nMXNet cannot use the GPU; stopping.")
        write_json_atomically(RESULTS_FILE, result)
        return 1
    if not args.skip_tests:
        attempt("gpu_tests", lambda: run_gpu_tests(args.test_timeout))
        if result.get("gpu_tests", {}).get("returncode"):
            result["failures"].append(f"gpu_tests: {result['gpu_tests']['summary']}")
    data = phases.run("data", lambda: prepare(MULTI30K_DIR))
    warmup = args.log_every if args.updates > args.log_every else 0
    result["train"] = {}
    for precision in ("fp32",) if REHEARSAL["on"] else ("fp32", "fp16"):
        try:
            result["train"][precision] = phases.run(f"train {precision}", lambda: train_reference(
                data, precision, args.updates, warmup, args.log_every))
        except Exception as err:
            print(f"   FAILED: {err}", flush=True)
            result["failures"].append(f"train {precision}: {str(err)[:1500]}")
    fp32 = WORK_DIR / "train-fp32"
    if (fp32 / "model" / "params.best").exists():
        attempt("decode", lambda: decode_validation(fp32 / "model", data.val_source))
        attempt("serve", lambda: serve_requests(fp32, data.val_source))
    else:
        result["failures"].append("decode/serve: no fp32 model to use")
    result["phase_seconds"] = phases.times
    result["total_seconds"] = time.monotonic() - phases.start
    write_json_atomically(RESULTS_FILE, result)
    print_summary(result)
    return 1 if result["failures"] else 0


def print_summary(result: dict) -> None:
    print("\n== GPU smoke summary")
    for gpu in result["gpus"]:
        print(f"   {gpu}")
    if "mxnet" in result:
        m = result["mxnet"]
        print(f"   compute capability {m.get('compute_capability') or 'unknown'}: MXNet's kernels ran "
              f"({m.get('kernel_support')}; first kernels {m.get('first_kernels_seconds')} s)")
    if "gpu_tests" in result:
        print(f"   gpu tests: {result['gpu_tests']['summary']}")
    for precision, train in result.get("train", {}).items():
        print(f"   train {precision}: {train['target_tokens_per_s']:.0f} target tokens/s "
              f"({train['updates_per_s']:.2f} updates/s, after {train['warmup_updates']} warm-up updates)")
    if "decode" in result:
        d = result["decode"]
        print(f"   decode val (beam 5, batch {d['batch_sentences']}): {d['output_tokens_per_s']:.0f} output tokens/s, "
              f"{d['sentences_per_s']:.1f} sentences/s; one sentence {d['one_sentence_ms_median']:.1f} ms median")
    if "serve" in result:
        s = result["serve"]
        print(f"   serve: p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms over {s['requests']} requests, "
              f"{s['errors']} errors")
    total = result["total_seconds"]
    print(f"   total {total:.0f} s ({'within' if total <= BUDGET_S else 'OVER'} the {BUDGET_S} s budget)")
    for failure in result["failures"]:
        print(f"   FAILED {failure.splitlines()[0]}")
    print(f"results: {relative(RESULTS_FILE)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=200, help="updates of each reference-model run")
    parser.add_argument("--log-every", type=int, default=50, help="progress window (the first is warm-up)")
    parser.add_argument("--skip-tests", action="store_true", help="do not run the tests marked gpu")
    parser.add_argument("--test-timeout", type=int, default=240)
    parser.add_argument("--venv", type=Path, default=GPU_VENV, help="the GPU venv (created when missing)")
    parser.add_argument("--find-links", help="also install from the wheels in this folder")
    parser.add_argument("--no-index", action="store_true", help="install from --find-links only")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cpu-rehearsal", action="store_true",
                        help="run the steps after the install on the CPU with the current python (tiny runs, "
                             "no fp16, no gpu tests, results under build/): checks this script without a GPU")
    args = parser.parse_args(argv)
    if args.cpu_rehearsal:
        global RESULTS_FILE
        REHEARSAL["on"] = True
        RESULTS_FILE = WORK_DIR / "rehearsal.json"
        args.skip_tests = True
        return inside(args)
    if args.inside:
        return inside(args)
    gpus = detect_gpus()
    if not gpus:
        print("gpu-smoke: no NVIDIA GPU found (nvidia-smi missing, failing or listing none); nothing to do.")
        return 0
    print("gpu-smoke: " + "; ".join(gpus), flush=True)
    start = time.monotonic()
    python = ensure_venv(args.venv, args.find_links, args.no_index)
    print(f"GPU venv ready ({time.monotonic() - start:.0f} s)", flush=True)
    forwarded = ["--updates", str(args.updates), "--log-every", str(args.log_every),
                 "--test-timeout", str(args.test_timeout)] + (["--skip-tests"] if args.skip_tests else [])
    cmd = [str(python), "-m", "bench.gpu_smoke", "--inside"] + forwarded
    return subprocess.run(cmd, cwd=REPO_ROOT, env=gpu_environment(args.venv)).returncode


if __name__ == "__main__":
    sys.exit(main())
