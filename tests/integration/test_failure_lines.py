"""No library trace text reaches a user: the failure file, HTTP bodies and `translate`'s stderr carry one clear line.

The three failures of issue 16: a corrupt model (params.best), a CUDA-out-of-memory-like MXNetError during
training, and a GPU that is not there (`devices`, `--device`, the serving worker's device).
"""
import os
import re
import time

import mxnet as mx
import pytest

import seq2seq.train_job as train_job
from seq2seq import failure_text, translate
from seq2seq.data.vocab import build_vocabulary
from seq2seq.errors import UserError
from seq2seq.serving import wsgi
from seq2seq.serving.settings import ServingSettings
from seq2seq.training.devices import contexts_for
from seq2seq.training.trainer import TrainingHooks
from tests.integration.test_train_job import QUICK, make_tree
from tests.sagemaker_tree import read_failure
from tests.untrained_model import save_untrained_model

TRACE_TEXT = re.compile(r"Traceback|\.cc\b|\.h\"|line \d+|File \"|\[bt\]")
# What MXNet 1.9.1's GPU storage manager raises when cudaMalloc fails (pooled_storage_manager.h), as Python sees it.
CUDA_OUT_OF_MEMORY = ('Traceback (most recent call last):\n  File "../src/storage/./pooled_storage_manager.h", '
                      'line 161\nMXNetError: cudaMalloc retry failed: out of memory (requested 2147483648 bytes)')


def assert_one_clear_line(text: str):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert not TRACE_TEXT.search(text), text


def corrupt_model(directory) -> str:
    source = build_vocabulary([["ein", "hund"]])
    target = build_vocabulary([["a", "dog"]])
    model_dir = str(directory / "model")
    save_untrained_model(model_dir, source, target, seed=0, max_seq_len_source=8, max_seq_len_target=8)
    with open(os.path.join(model_dir, "params.best"), "r+b") as stream:
        stream.write(b"\x00" * 64)                      # the NDArray file header is gone
    return model_dir


# ----- the one-line text itself -----

def test_one_line_keeps_mxnet_s_reason_and_drops_its_trace(tmp_path):
    path = tmp_path / "bad.params"
    path.write_bytes(b"\x12" * 100)
    with pytest.raises(mx.base.MXNetError) as error:
        mx.nd.load(str(path))
    assert "Traceback" in str(error.value)               # what MXNet gives
    line = failure_text.one_line(error.value)
    assert line == "Check failed: header == kMXAPINDArrayListMagic: Invalid NDArray file format"
    assert_one_clear_line(line)


def test_one_line_of_a_logged_fatal_check_drops_the_time_and_source_but_keeps_file_names():
    error = mx.base.MXNetError("[12:00:01] ../src/io/iter_image_recordio.cc:212: Check failed: model.h5 missing")
    assert failure_text.one_line(error) == "Check failed: model.h5 missing"


def test_out_of_memory_is_recognised_with_its_figures():
    error = mx.base.MXNetError(CUDA_OUT_OF_MEMORY)
    assert failure_text.is_out_of_memory(error)
    assert not failure_text.is_out_of_memory(mx.base.MXNetError("Check failed: shape mismatch"))
    assert failure_text.memory_figures(error) == "2147483648 bytes"
    text = failure_text.training_out_of_memory(error, "gpu:0,1", 512)
    assert "devices=gpu:0,1" in text and "batch_size (now 512)" in text and "2147483648 bytes" in text
    assert_one_clear_line(text)


# ----- training: the failure file -----

def run_job_raising(base, monkeypatch, error: Exception, **hyperparameters) -> int:
    make_tree(base, dict(QUICK, max_num_batches=4, checkpoint_frequency_num_batches=4, bleu_sample_size=0,
                         **hyperparameters))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))

    def fail(state):
        raise error

    return train_job.main(hooks=TrainingHooks(on_update=fail))


def test_cuda_out_of_memory_in_training_is_a_user_error_naming_batch_size_and_device(tmp_path, monkeypatch):
    code = run_job_raising(tmp_path, monkeypatch, mx.base.MXNetError(CUDA_OUT_OF_MEMORY), batch_size=24)
    failure = read_failure(str(tmp_path))
    assert code == 2
    assert failure.startswith("UserError: training ran out of memory on devices=cpu")
    assert "batch_size (now 24)" in failure and "cudaMalloc retry failed: out of memory" in failure
    assert_one_clear_line(failure)


def test_an_internal_mxnet_error_in_training_leaves_one_line(tmp_path, monkeypatch):
    error = mx.base.MXNetError('Traceback (most recent call last):\n  File "../src/operator/tensor/./matrix_op-inl.h",'
                               ' line 47\nMXNetError: Check failed: dshape.ndim() == 2 (3 vs. 2)')
    code = run_job_raising(tmp_path, monkeypatch, error)
    failure = read_failure(str(tmp_path))
    assert code == 1
    assert failure.startswith("InternalError: MXNetError: Check failed: dshape.ndim() == 2 (3 vs. 2). This is")
    assert_one_clear_line(failure)


def test_a_missing_gpu_in_devices_is_a_clear_user_error():
    with pytest.raises(UserError) as error:
        contexts_for("gpu:0,3")
    assert error.value.message.startswith("hyperparameter devices=gpu:0,3: GPU 0 requested, but no GPU is visible")
    assert_one_clear_line(error.value.message)


# ----- serving: /ping and request bodies -----

def serving_app(model_dir: str, device: str = "cpu"):
    settings = ServingSettings(base_dir=os.path.dirname(model_dir), device=device)
    app = wsgi.create_server_app(settings)
    provider = app.extensions["seq2seq_provider"]
    provider.start()
    deadline = time.monotonic() + 60
    while provider.wait_until_ready(0.2) is False and time.monotonic() < deadline:
        try:
            provider.translator()
        except Exception as error:  # noqa: BLE001 - the load has ended when the message is not "still loading"
            if "still loading" not in str(error):
                break
    return app


@pytest.mark.parametrize("device", ["cpu", "gpu:0"])
def test_a_corrupt_model_or_missing_gpu_gives_one_line_in_every_http_body(tmp_path, device):
    app = serving_app(corrupt_model(tmp_path), device)
    client = app.test_client()
    ping = client.get("/ping")
    invocation = client.post("/invocations", json={"instances": [{"data": "ein hund"}]})
    for response in (ping, invocation):
        assert response.status_code == 503
        message = response.get_json()["error"]
        assert message.startswith("the model failed to load: ")
        assert_one_clear_line(message)
    message = ping.get_json()["error"]
    if device == "cpu":
        assert "Invalid NDArray file format" in message and "params.best" in message
    else:
        assert "gpu:0" in message and "no GPU is visible" in message


# ----- translate: stderr -----

def test_translate_with_a_corrupt_model_prints_one_line(tmp_path, capsys):
    source = tmp_path / "source.txt"
    source.write_text("ein hund\n")
    code = translate.main(["--model", corrupt_model(tmp_path), "--input", str(source),
                           "--output", str(tmp_path / "out.txt")])
    stderr = capsys.readouterr().err
    assert code == 1
    assert stderr.startswith("translate: --model ") and "Invalid NDArray file format" in stderr
    assert_one_clear_line(stderr)


def test_translate_on_a_missing_gpu_prints_one_line(tmp_path, capsys):
    source = tmp_path / "source.txt"
    source.write_text("ein hund\n")
    model_dir = tmp_path / "good"
    save_untrained_model(str(model_dir), build_vocabulary([["ein"]]), build_vocabulary([["a"]]), seed=0,
                         max_seq_len_source=8, max_seq_len_target=8)
    code = translate.main(["--model", str(model_dir), "--input", str(source), "--device", "gpu:7"])
    stderr = capsys.readouterr().err
    assert code == 1
    assert stderr.startswith("translate: --device gpu:7 requested, but ")
    assert_one_clear_line(stderr)


class _OutOfMemoryTranslator:
    """A loaded translator whose decoding fails as MXNet does when the GPU runs out of memory."""

    def __init__(self):
        from tests.unit.serving_fakes import ReversingTranslator
        self._inner = ReversingTranslator()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def translate_ids(self, sources, options=None):
        raise mx.base.MXNetError(CUDA_OUT_OF_MEMORY)


def test_out_of_memory_while_decoding_gives_one_line_naming_the_device():
    from seq2seq.serving.app import create_app
    from seq2seq.serving.providers import DirectProvider
    app = create_app(DirectProvider(_OutOfMemoryTranslator()), ServingSettings(device="gpu:0"))
    response = app.test_client().post("/invocations", json={"instances": [{"data": "ein hund"}]})
    message = response.get_json()["error"]
    assert response.status_code == 500
    assert message.startswith("decoding ran out of memory on gpu:0 (MXNet: cudaMalloc retry failed: out of memory")
    assert "SEQ2SEQ_MAX_BATCH_SENTENCES" in message and "2147483648 bytes" in message
    assert_one_clear_line(message)
