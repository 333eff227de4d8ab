"""Bad-input cases: the model channel (fine-tuning), the embeddings channel and checkpointconfig.json."""
import io
import json
import os
import tarfile
import tempfile

from tests.bad_inputs.job import JOB_HP, config_path, data_path, job_case, overwrite, trained_tree, truncate
from tests.sagemaker_tree import write_hyperparameters

_STORED = {}


def _stored_model() -> str:
    """The model directory of a job that ran (made once per process), to fine-tune from."""
    if "model" not in _STORED:
        base = tempfile.mkdtemp(prefix="bad-inputs-stored-")
        trained_tree(base)
        _STORED["model"] = os.path.join(base, "model")
    return _STORED["model"]


def _archive(base, extra=None, leave_out=()) -> str:
    """<base>/input/data/model/model.tar.gz of the stored model, without `leave_out`, plus extra(tar)."""
    channel = data_path(base, "model")
    os.makedirs(channel, exist_ok=True)
    path = os.path.join(channel, "model.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for name in sorted(os.listdir(_stored_model())):
            if name not in leave_out:
                tar.add(os.path.join(_stored_model(), name), arcname=name)
        if extra is not None:
            extra(tar)
    return path


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        data = b"x" if kind == tarfile.REGTYPE else b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return add


@job_case("model-member-dotdot", "model channel", "model.tar.gz has a member ../../evil.sh")
def _(base):
    _archive(base, _member("../../evil.sh"))


@job_case("model-member-absolute", "model channel", "model.tar.gz has a member /etc/cron.d/evil")
def _(base):
    _archive(base, _member("/etc/cron.d/evil"))


@job_case("model-member-outward-link", "model channel", "model.tar.gz has a symbolic link to /etc/passwd")
def _(base):
    _archive(base, _member("vocab.extra.json", tarfile.SYMTYPE, "/etc/passwd"))


@job_case("model-member-device", "model channel", "model.tar.gz has a character device")
def _(base):
    _archive(base, _member("dev-null", tarfile.CHRTYPE))


@job_case("model-not-gzip", "model channel", "model.tar.gz is not gzip")
def _(base):
    overwrite(_archive(base), "params and config, honest\n")


@job_case("model-truncated", "model channel", "model.tar.gz is cut off half way")
def _(base):
    path = _archive(base)
    truncate(path, os.path.getsize(path) // 2)


@job_case("model-missing-params", "model channel", "model.tar.gz has no params.best")
def _(base):
    _archive(base, leave_out=("params.best",))


@job_case("model-other-architecture", "model channel",
          "the stored model has 32 hidden units and lstm cells; the hyperparameters say 48 and gru")
def _(base):
    _archive(base)
    write_hyperparameters(base, dict(JOB_HP, rnn_num_hidden=48, rnn_cell_type="gru"))


def _embeddings(base, text, name="embed.src.txt"):
    channel = data_path(base, "embeddings")
    os.makedirs(channel, exist_ok=True)
    overwrite(os.path.join(channel, name), text)


@job_case("embeddings-wrong-size", "embeddings", "embed.src.txt line 2 has 3 numbers; num_embed_source is 16")
def _(base):
    _embeddings(base, "w1 " + " ".join(["0.1"] * 16) + "\nw2 0.1 0.2 0.3\n")


@job_case("embeddings-not-a-number", "embeddings", "embed.trg.txt line 1 has the field 0.1.2", )
def _(base):
    _embeddings(base, "w1 0.1.2 " + " ".join(["0.1"] * 15) + "\n", "embed.trg.txt")


@job_case("embeddings-header-size", "embeddings", "embed.src.txt's word2vec header says 300 dimensions")
def _(base):
    _embeddings(base, "2 300\nw1 " + " ".join(["0.1"] * 300) + "\n")


@job_case("embeddings-no-file", "embeddings", "the embeddings channel holds only vectors.bin")
def _(base):
    _embeddings(base, b"\x00", "vectors.bin")


@job_case("checkpointconfig-relative", "checkpoint config", "checkpointconfig.json's LocalPath is relative")
def _(base):
    overwrite(config_path(base, "checkpointconfig.json"), json.dumps({"LocalPath": "checkpoints"}))
