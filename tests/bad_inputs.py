"""Bad inputs and what each produces: the cases behind docs/bad_inputs.md.

Each case builds a small /opt/ml tree (or an HTTP request), breaks one thing and returns what a user sees:
the first line of /opt/ml/output/failure (training) or "<status> <body>" (serving). Paths under the
temporary tree are written `<base>`.

`python -m tests.bad_inputs --write` runs every case and rewrites the table in docs/bad_inputs.md;
tests/integration/test_bad_inputs.py runs every case again and checks the table row by row.
"""
import argparse
import contextlib
import errno
import io
import json
import os
import re
import shutil
import signal
import struct
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (REPO_ROOT, os.path.join(REPO_ROOT, "tests"), os.path.join(REPO_ROOT, "tests", "unit")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from tests.sagemaker_tree import TINY_MODEL, copy_task_pairs, write_hyperparameters, write_tree  # noqa: E402

DOC = os.path.join(REPO_ROOT, "docs", "bad_inputs.md")
BEGIN, END = "<!-- BEGIN GENERATED: bad inputs -->", "<!-- END GENERATED: bad inputs -->"
JOB_HP = dict(TINY_MODEL, max_num_batches=2, checkpoint_frequency_num_batches=2, bleu_sample_size=0, seed=3)
CASES = []  # (id, area, what is wrong, function(work_dir) -> observed text)


def case(case_id: str, area: str, what: str):
    def register(function):
        CASES.append((case_id, area, what, function))
        return function
    return register


# ----- the training job, in this process -----

def make_tree(base: str, hyperparameters: dict = None) -> str:
    write_tree(base, JOB_HP if hyperparameters is None else hyperparameters, copy_task_pairs(40, seed=1),
               copy_task_pairs(8, seed=2))
    return base


def data_path(base, *parts):
    return os.path.join(base, "input", "data", *parts)


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


def state_dir(base):
    return os.path.join(base, "checkpoints", "training_state")


def truncate(path: str, keep: int) -> None:
    with open(path, "r+b") as stream:
        stream.truncate(keep)


# data
@case("data-missing-channel", "data", "the validation channel is missing")
def _(base):
    make_tree(base)
    shutil.rmtree(data_path(base, "validation"))
    return run_job(base)


@case("data-empty-rec", "data", "train.rec is an empty file")
def _(base):
    make_tree(base)
    open(data_path(base, "train", "train.rec"), "wb").close()
    return run_job(base)


@case("data-bad-magic", "data", "record 5 of train.rec does not start with the RecordIO magic number")
def _(base):
    make_tree(base)
    path = data_path(base, "train", "train.rec")
    with open(path, "rb") as stream:
        data = bytearray(stream.read())
    magic = struct.pack("<I", 0xCED7230A)
    offsets = [i for i in range(0, len(data) - 3, 4) if data[i:i + 4] == magic]
    data[offsets[5]:offsets[5] + 4] = b"\xde\xad\xbe\xef"
    with open(path, "wb") as stream:
        stream.write(data)
    return run_job(base)


@case("data-truncated-rec", "data", "train.rec is cut off in the middle of its last record")
def _(base):
    make_tree(base)
    path = data_path(base, "train", "train.rec")
    truncate(path, os.path.getsize(path) - 5)
    return run_job(base)


@case("data-token-beyond-vocab", "data", "a record holds a target token id beyond vocab.trg.json")
def _(base):
    from seq2seq.data.recordio_codec import RecordWriter
    make_tree(base)
    with RecordWriter(data_path(base, "train", "train.rec")) as writer:
        for record in range(10):
            writer.write([4, 5], [4, 5, 999] if record == 7 else [4, 5])
    return run_job(base)


@case("data-not-recordio", "data", "train.rec is a text file")
def _(base):
    make_tree(base)
    with open(data_path(base, "train", "train.rec"), "w") as stream:
        stream.write("ein hund\tthe dog\n" * 20)
    return run_job(base)


@case("data-only-empty-pairs", "data", "every validation pair has an empty side")
def _(base):
    from seq2seq.data.recordio_codec import RecordWriter
    make_tree(base)
    with RecordWriter(data_path(base, "validation", "val.rec")) as writer:
        for _ in range(5):
            writer.write([4, 5], [])
    return run_job(base)


# vocabularies
@case("vocab-missing-file", "vocabulary", "vocab.trg.json is missing")
def _(base):
    make_tree(base)
    os.remove(data_path(base, "vocab", "vocab.trg.json"))
    return run_job(base)


@case("vocab-not-json", "vocabulary", "vocab.src.json is not JSON")
def _(base):
    make_tree(base)
    with open(data_path(base, "vocab", "vocab.src.json"), "w") as stream:
        stream.write("<pad>\n<unk>\n")
    return run_job(base)


@case("vocab-missing-reserved", "vocabulary", "vocab.src.json lacks <unk>")
def _(base):
    make_tree(base)
    path = data_path(base, "vocab", "vocab.src.json")
    with open(path, encoding="utf-8") as stream:
        mapping = json.load(stream)
    tokens = [t for t, _ in sorted(mapping.items(), key=lambda item: item[1]) if t != "<unk>"]
    with open(path, "w", encoding="utf-8") as stream:
        json.dump({t: i for i, t in enumerate(tokens)}, stream)
    return run_job(base)


@case("vocab-duplicate-id", "vocabulary", "two tokens of vocab.src.json share an id")
def _(base):
    make_tree(base)
    path = data_path(base, "vocab", "vocab.src.json")
    with open(path, encoding="utf-8") as stream:
        mapping = json.load(stream)
    mapping["w0"] = mapping["w1"]
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(mapping, stream)
    return run_job(base)


@case("vocab-too-small-for-records", "vocabulary", "vocab.src.json comes from other data (fewer ids than the "
                                                   "records use)")
def _(base):
    from seq2seq.data.vocab import Vocabulary
    make_tree(base)
    Vocabulary({t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", "w0", "w1"])}).save(
        data_path(base, "vocab", "vocab.src.json"))
    return run_job(base)


# hyperparameters
def with_hyperparameters(base, **changes):
    make_tree(base)
    write_hyperparameters(base, dict(JOB_HP, **changes))
    return run_job(base)


# One bad value each in an otherwise valid hyperparameters.json: (id, what is wrong, the changed values).
_HYPERPARAMETER_CASES = [
    ("hp-unknown-name", "a misspelt name (batch_szie)", {"batch_szie": 32}),
    ("hp-bad-choice", "rnn_attention_type=cosine", {"rnn_attention_type": "cosine"}),
    ("hp-zero-batch", "batch_size=0", {"batch_size": 0}),
    ("hp-not-a-number", "learning_rate=fast", {"learning_rate": "fast"}),
    ("hp-odd-hidden", "rnn_num_hidden=33 (odd: the encoder directions split it)", {"rnn_num_hidden": 33}),
    ("hp-weight-tying-sizes", "weight_tying=true with num_embed_target != rnn_num_hidden", {"weight_tying": "true"}),
    ("hp-bad-devices", "devices=tpu:0", {"devices": "tpu:0"}),
]
for _case_id, _what, _changes in _HYPERPARAMETER_CASES:
    case(_case_id, "hyperparameters", _what)(lambda base, changes=_changes: with_hyperparameters(base, **changes))


@case("hp-file-not-json", "hyperparameters", "hyperparameters.json is not JSON")
def _(base):
    make_tree(base)
    with open(os.path.join(base, "input", "config", "hyperparameters.json"), "w") as stream:
        stream.write("batch_size=64\n")
    return run_job(base)


# resource config
def with_resource_config(base, text: str):
    make_tree(base)
    with open(os.path.join(base, "input", "config", "resourceconfig.json"), "w") as stream:
        stream.write(text)
    return run_job(base)


@case("resource-not-json", "resource config", "resourceconfig.json is not JSON")
def _(base):
    return with_resource_config(base, "{hosts: [algo-1]")


@case("resource-host-not-listed", "resource config", "current_host is not among hosts")
def _(base):
    return with_resource_config(base, json.dumps({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}))


@case("resource-no-hosts", "resource config", "hosts is an empty list")
def _(base):
    return with_resource_config(base, json.dumps({"current_host": "algo-1", "hosts": []}))


# checkpoints
@case("ckpt-params-truncated", "checkpoints", "training_state/params cut to half its size")
def _(base):
    trained_tree(base)
    path = os.path.join(state_dir(base), "params")
    truncate(path, os.path.getsize(path) // 2)
    return run_job(base)


@case("ckpt-params-flipped", "checkpoints", "one byte of training_state/params changed (same size)")
def _(base):
    trained_tree(base)
    path = os.path.join(state_dir(base), "params")
    with open(path, "r+b") as stream:
        stream.seek(os.path.getsize(path) // 2)
        byte = stream.read(1)
        stream.seek(-1, os.SEEK_CUR)
        stream.write(bytes([byte[0] ^ 0xFF]))
    return run_job(base)


@case("ckpt-state-missing", "checkpoints", "training_state/state.json deleted")
def _(base):
    trained_tree(base)
    os.remove(os.path.join(state_dir(base), "state.json"))
    return run_job(base)


@case("ckpt-state-garbage", "checkpoints", "training_state/state.json overwritten with garbage")
def _(base):
    trained_tree(base)
    with open(os.path.join(state_dir(base), "state.json"), "wb") as stream:
        stream.write(b"\x00\x01garbage")
    return run_job(base)


@case("ckpt-state-not-json", "checkpoints", "training_state/state.json cut off (not valid JSON)")
def _(base):
    trained_tree(base)
    truncate(os.path.join(state_dir(base), "state.json"), 100)
    return run_job(base)


@case("ckpt-state-field-missing", "checkpoints", "training_state/state.json without num_updates")
def _(base):
    trained_tree(base)
    path = os.path.join(state_dir(base), "state.json")
    with open(path) as stream:
        record = json.load(stream)
    del record["num_updates"]
    with open(path, "w") as stream:
        json.dump(record, stream)
    return run_job(base)


@case("ckpt-optimizer-missing", "checkpoints", "training_state/optimizer.states deleted")
def _(base):
    trained_tree(base)
    os.remove(os.path.join(state_dir(base), "optimizer.states"))
    return run_job(base)


@case("ckpt-old-format-truncated", "checkpoints", "a checkpoint without recorded sizes whose params is truncated")
def _(base):
    trained_tree(base)
    path = os.path.join(state_dir(base), "state.json")
    with open(path) as stream:
        record = json.load(stream)
    record.pop("files", None)
    with open(path, "w") as stream:
        json.dump(record, stream)
    params = os.path.join(state_dir(base), "params")
    truncate(params, os.path.getsize(params) // 2)
    return run_job(base)


@case("ckpt-other-model", "checkpoints", "the checkpoint was written by a model with another rnn_num_hidden")
def _(base):
    trained_tree(base)
    write_hyperparameters(base, dict(JOB_HP, rnn_num_hidden=48))
    return run_job(base)


@case("ckpt-dir-is-file", "checkpoints", "checkpoints/training_state is a file")
def _(base):
    trained_tree(base)
    shutil.rmtree(state_dir(base))
    with open(state_dir(base), "w") as stream:
        stream.write("x")
    return run_job(base)


# disk
@contextlib.contextmanager
def patched(target, name, replacement):
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


def full_disk_save(path):
    """What MXNet does when the disk fills while it writes a file: write to /dev/full."""
    import mxnet as mx
    mx.nd.save("/dev/full", {"x": mx.nd.ones((256, 256))})


@case("disk-full-checkpoint", "disk", "the disk fills while the checkpoint's parameters are written")
def _(base):
    from seq2seq.training import training_state
    trained_tree(base)
    write_hyperparameters(base, dict(JOB_HP, max_num_batches=4))
    original = training_state.save_training_state

    def save(checkpoint_dir, state, save_params, save_optimizer):
        return original(checkpoint_dir, state, full_disk_save, save_optimizer)
    with patched(training_state, "save_training_state", save):
        return run_job(base)


@case("disk-no-permission-state", "disk", "EACCES while state.json of a checkpoint is written")
def _(base):
    from seq2seq.training import training_state
    trained_tree(base)
    write_hyperparameters(base, dict(JOB_HP, max_num_batches=4))

    def refuse(path, text):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    with patched(training_state, "write_text_atomically", refuse):
        return run_job(base)


@case("disk-full-best", "disk", "ENOSPC while params.best is written")
def _(base):
    from seq2seq.training import training_state
    make_tree(base)
    original = training_state.save_file_atomically

    def save(path, write, intact):
        def no_space(temp):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), temp)
        return original(path, no_space if path.endswith("params.best") else write, intact)
    with patched(training_state, "save_file_atomically", save):
        return run_job(base)


@case("disk-full-model", "disk", "ENOSPC while /opt/ml/model/params.best is exported")
def _(base):
    from seq2seq.inference import model_io
    make_tree(base)

    def no_space(model, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    with patched(model_io, "save_parameters_atomically", no_space):
        return run_job(base)


@case("disk-output-unwritable", "disk", "/opt/ml/output is not writable (failure reported on stderr)")
def _(base):
    make_tree(base)
    os.symlink("/sys/kernel", os.path.join(base, "output"))
    return run_job(base)


@case("disk-checkpoints-unwritable", "disk", "/opt/ml/checkpoints is not writable")
def _(base):
    make_tree(base)
    os.symlink("/sys/kernel", os.path.join(base, "checkpoints"))
    return run_job(base)


# ----- HTTP: the Flask app with a stand-in translator -----

def http(method: str, path: str, body=b"", headers=None, max_payload_mb: float = 0.01, environ=None) -> str:
    from serving_fakes import ReversingTranslator
    from seq2seq.serving.app import create_app
    from seq2seq.serving.providers import DirectProvider
    from seq2seq.serving.settings import ServingSettings
    app = create_app(DirectProvider(ReversingTranslator()), ServingSettings(max_payload_mb=max_payload_mb,
                                                                           body_timeout_s=2))
    response = app.test_client().open(path, method=method, data=body, headers=headers or {},
                                      environ_overrides=environ or {})
    return f"{response.status_code} {response.get_data(as_text=True).strip()}"


JSON = {"Content-Type": "application/json"}


@case("http-content-type", "HTTP", "Content-Type: text/csv")
def _(base):
    return http("POST", "/invocations", b"a,b", {"Content-Type": "text/csv"})


@case("http-accept", "HTTP", "Accept: text/html")
def _(base):
    return http("POST", "/invocations", b'{"instances": []}', dict(JSON, Accept="text/html"))


@case("http-invalid-json", "HTTP", "a JSON body cut off")
def _(base):
    return http("POST", "/invocations", b'{"instances": [{"data": "ein', JSON)


@case("http-data-not-string", "HTTP", "instances[0].data is a number")
def _(base):
    return http("POST", "/invocations", b'{"instances": [{"data": 1}]}', JSON)


@case("http-no-instances", "HTTP", "a JSON object without instances")
def _(base):
    return http("POST", "/invocations", b'{"data": "ein hund"}', JSON)


@case("http-beam-size", "HTTP", "configuration.beam_size=1000")
def _(base):
    return http("POST", "/invocations", b'{"instances": [{"data": "ein hund"}], "configuration": {"beam_size": 1000}}',
                JSON)


@case("http-too-large", "HTTP", "a body over SAGEMAKER_MAX_PAYLOAD_IN_MB (0.01 here)")
def _(base):
    return http("POST", "/invocations", b"x" * 20000, JSON)


@case("http-deep-nesting", "HTTP", "JSON nested 100000 levels deep")
def _(base):
    return http("POST", "/invocations", b"[" * 100000, JSON, max_payload_mb=1)


@case("http-jsonlines-line", "HTTP", "line 2 of an application/jsonlines body is not JSON")
def _(base):
    return http("POST", "/invocations", b'{"source": "ein hund"}\n{"source": \n', {"Content-Type": "application/jsonlines"})


@case("http-bad-utf8", "HTTP", "a body that is not UTF-8")
def _(base):
    return http("POST", "/invocations", b'{"instances": [{"data": "\xff\xfe"}]}', JSON)


@case("http-recordio-corrupt", "HTTP", "a RecordIO-protobuf body with a broken magic number")
def _(base):
    return http("POST", "/invocations", b"\x00" * 16, {"Content-Type": "application/x-recordio-protobuf"})


class _StallingInput:
    def read(self, size=-1):
        raise TimeoutError("timed out")

    readline = read


@case("http-stalled-body", "HTTP", "the client stops sending the body (SEQ2SEQ_BODY_TIMEOUT=2 here)")
def _(base):
    return http("POST", "/invocations", headers=dict(JSON, **{"Content-Length": "100"}),
                environ={"wsgi.input": _StallingInput(), "wsgi.input_terminated": True, "CONTENT_LENGTH": "100"})


@case("http-short-body", "HTTP", "the connection ends before Content-Length bytes arrived")
def _(base):
    return http("POST", "/invocations", headers=dict(JSON, **{"Content-Length": "100"}),
                environ={"wsgi.input": io.BytesIO(b'{"instances": '), "wsgi.input_terminated": True,
                         "CONTENT_LENGTH": "100"})


@case("http-unknown-route", "HTTP", "POST /predict")
def _(base):
    return http("POST", "/predict", b"{}", JSON)


@case("http-wrong-method", "HTTP", "GET /invocations")
def _(base):
    return http("GET", "/invocations")


# ----- running the cases, and the table -----

def observe(case_function, work_dir: str) -> str:
    """Run one case in `work_dir`; its output with `work_dir` written `<base>`, on one line."""
    text = case_function(work_dir)
    text = text.replace(os.path.realpath(work_dir), "<base>").replace(work_dir, "<base>")
    return " ".join(text.split())


def escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_table(observed: dict) -> str:
    lines = ["| # | id | area | bad input | what it produces |", "|---|---|---|---|---|"]
    for number, (case_id, area, what, _) in enumerate(CASES, 1):
        lines.append(f"| {number} | `{case_id}` | {area} | {escape(what)} | `{observed[case_id]}` |")
    return "\n".join(lines)


def documented() -> dict:
    """{id: expected text} from the table in docs/bad_inputs.md."""
    with open(DOC, encoding="utf-8") as stream:
        text = stream.read()
    table = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows[cells[1].strip("`")] = cells[4][1:-1]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in docs/bad_inputs.md")
    parser.add_argument("--only", help="run only this case id")
    args = parser.parse_args(argv)
    import logging
    logging.disable(logging.CRITICAL)
    observed = {}
    for case_id, _, _, function in CASES:
        if args.only and case_id != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="bad-input-") as work_dir:
            observed[case_id] = observe(function, work_dir)
        print(f"{case_id}: {observed[case_id]}", flush=True)
    if args.write and not args.only:
        with open(DOC, encoding="utf-8") as stream:
            text = stream.read()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        with open(DOC, "w", encoding="utf-8") as stream:
            stream.write(text[:start] + "\n" + render_table(observed) + "\n" + text[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
