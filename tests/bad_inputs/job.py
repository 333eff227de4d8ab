"""The training job, in this process: small /opt/ml trees, running the job on them, and helpers that break them."""
import contextlib
import io
import json
import os
import shutil
import signal
import tempfile

from tests.bad_inputs import case
from tests.sagemaker_tree import TINY_MODEL, copy_task_pairs, write_tree

JOB_HP = dict(TINY_MODEL, max_num_batches=2, checkpoint_frequency_num_batches=2, bleu_sample_size=0, seed=3)


def make_tree(base: str, hyperparameters: dict = None) -> str:
    write_tree(base, JOB_HP if hyperparameters is None else hyperparameters, copy_task_pairs(40, seed=1),
               copy_task_pairs(8, seed=2))
    return base


def data_path(base, *parts):
    return os.path.join(base, "input", "data", *parts)


def config_path(base, name):
    return os.path.join(base, "input", "config", name)


@contextlib.contextmanager
def job_environment(base: str):
    previous_env = os.environ.get("SAGEMAKER_BASE_DIR")
    previous_handler = signal.getsignal(signal.SIGTERM)
    os.environ["SAGEMAKER_BASE_DIR"] = base
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if previous_env is None:
            os.environ.pop("SAGEMAKER_BASE_DIR", None)
        else:
            os.environ["SAGEMAKER_BASE_DIR"] = previous_env


def run_job(base: str) -> str:
    """Run the job in this process; "exit <code>: <first line of output/failure>" (or of stderr)."""
    import seq2seq.train_job as train_job
    stderr = io.StringIO()
    with job_environment(base), contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = train_job.main()
    failure = os.path.join(base, "output", "failure")
    if os.path.exists(failure):
        with open(failure, encoding="utf-8") as stream:
            first = stream.read().splitlines()[0]
    else:
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        first = ("(no failure file) stderr: " + lines[-1]) if lines else "(no failure file)"
    return f"exit {code}: {first}"


_TRAINED = {}


def trained_tree(base: str) -> str:
    """A copy of a tree whose job ran 2 updates and saved a checkpoint (trained once per process)."""
    if "template" not in _TRAINED:
        template = tempfile.mkdtemp(prefix="bad-inputs-trained-")
        make_tree(template)
        outcome = run_job(template)
        assert outcome.startswith("exit 0"), outcome
        _TRAINED["template"] = template
    shutil.copytree(_TRAINED["template"], base, dirs_exist_ok=True)
    for name in ("success", "failure"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(base, "output", name))
    return base


def job_case(case_id: str, area: str, what: str, tree=make_tree):
    """Register a case that builds a tree with `tree`, breaks it with the decorated function, and runs the job."""
    def register(break_tree):
        def run(base):
            tree(base)
            break_tree(base)
            return run_job(base)
        case(case_id, area, what)(run)
        return break_tree
    return register


# ----- ways to break a file -----

def truncate(path: str, keep: int) -> None:
    with open(path, "r+b") as stream:
        stream.truncate(keep)


def overwrite(path: str, content) -> None:
    """Replace the file at `path` with `content` (text or bytes)."""
    with open(path, "wb" if isinstance(content, bytes) else "w") as stream:
        stream.write(content)


def rewrite_json(path: str, change) -> None:
    """Replace the JSON value in `path` with change(value)."""
    with open(path, encoding="utf-8") as stream:
        value = json.load(stream)
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(change(value), stream)


def without(key: str):
    """change(mapping) for rewrite_json: the mapping without `key` (when it has it)."""
    return lambda mapping: {k: v for k, v in mapping.items() if k != key}
