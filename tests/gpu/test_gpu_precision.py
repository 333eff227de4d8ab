"""GPU checks of issue 16 (skipped without a GPU; `make gpu-smoke` runs them): fp16 gradients in true units
under global-norm clipping, exact float16 arg-max ids above 2,048, 2-GPU data parallelism with an uneven last
batch resumed exactly, and serving on gpu:0.

The CPU tests of the same arithmetic, with a stubbed loss scale, are tests/unit/test_precision_step.py.
"""

import os
import subprocess
import sys
import textwrap

import mxnet as mx
import pytest

from demo.server_process import ServerProcess
from seq2seq import client
from seq2seq.inference.translator import DecodeOptions, Translator
from tests.gpu.gpu_helpers import GPU_MARKS, gpu_count
from tests.gpu.test_gpu_train_job import SGD, run_job, validation
from tests.integration.test_resume import assert_same_training, make_tree, state_of
from tests.sagemaker_tree import REPO_ROOT, copy_task_pairs, write_tree

pytestmark = GPU_MARKS
two_gpus = pytest.mark.skipif(gpu_count() < 2, reason="needs 2 GPUs visible to MXNet")


# ----- fp16 + gradient_clip_norm + SGD -----

@pytest.fixture(scope="module")
def clipped_jobs(tmp_path_factory):
    """SGD with a global-norm clip that fires on most updates, in fp32 and in fp16 (AMP, loss scale 2^16)."""
    runs = {}
    for precision in ("fp32", "fp16"):
        base = tmp_path_factory.mktemp(f"clip_{precision}")
        runs[precision] = run_job(base, dict(SGD, devices="gpu:0", precision=precision, gradient_clip_norm=0.5))
    return runs


def test_fp16_with_global_norm_clipping_tracks_fp32(clipped_jobs):
    """Before the fix, the clip measured the loss-scaled gradients (x 65,536), always fired, and the update then
    divided by the scale again: every step was 65,536 times too small and fp16 training stalled."""
    fp32, fp16 = validation(clipped_jobs["fp32"][0]), validation(clipped_jobs["fp16"][0])
    assert fp32[-1] < 0.9 * fp32[0], fp32                   # the clipped fp32 job learns
    assert fp16[-1] < 0.9 * fp16[0], fp16                   # so does fp16: no stall
    assert fp16 == pytest.approx(fp32, rel=0.1)


def test_fp16_logs_its_loss_scale(clipped_jobs):
    _, stdout = clipped_jobs["fp16"]
    assert "fp16 loss scale" in stdout


# ----- float16 arg-max ids above 2,048 -----

SAMPLING_SCRIPT = textwrap.dedent("""
    import mxnet as mx, numpy as np
    from mxnet.contrib import amp
    amp.init()                                           # as the training job does for precision=fp16
    from seq2seq.data.batch import Batch
    from seq2seq.model.config import ModelConfig
    from seq2seq.model.seq2seq_model import Seq2SeqModel
    from seq2seq.training.evaluation import perplexity_and_accuracy
    TARGET = {target}
    config = ModelConfig(source_vocab_size=30, target_vocab_size=4100, num_embed_source=8, num_embed_target=8,
                         rnn_num_hidden=16, rnn_attention_num_hidden=8, input_feeding=True,
                         max_seq_len_source=10, max_seq_len_target=10)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(), mx.gpu(0))
    model.hybridize()
    source = np.array([[4, 5, 6, 0], [7, 8, 9, 10]], dtype=np.float32)
    target_input = np.array([[2, 11, 12, 13, 0], [2, 14, 15, 16, 17]], dtype=np.float32)
    labels = np.array([[11, 12, 13, 3, 0], [14, 15, 16, 17, 3]], dtype=np.float32)
    batch = Batch(source, np.array([3, 4], dtype=np.float32), target_input, labels)
    loaded = batch.load(mx.gpu(0))
    model(loaded.source, loaded.source_length, loaded.target_input).wait_to_read()   # shapes known
    out = model.decoder.output_layer
    out.weight.set_data(mx.nd.zeros(out.weight.shape, ctx=mx.gpu(0)))
    bias = np.zeros(out.bias.shape, dtype=np.float32)
    bias[TARGET] = 5.0
    out.bias.set_data(mx.nd.array(bias, ctx=mx.gpu(0)))
    mask = np.ones(target_input.shape, dtype=np.float32)
    mask[:, 2:] = 0
    batch.sample_mask = mask
    loaded = batch.load(mx.gpu(0))
    output = model.training_logits(loaded.source, loaded.source_length, loaded.target_input,
                                   loaded.valid_positions, loaded.sample_mask)
    print("LOGITS", output.logits.dtype.__name__)
    print("FED", sorted(set(output.fed_ids.asnumpy()[:, 2:].ravel().tolist())))
""")


@pytest.mark.parametrize("target", [2049, 4097])
def test_fp16_scheduled_sampling_feeds_exact_ids_above_2048(target):
    """Under AMP the output layer's logits are float16; the fed arg-max must still be the exact id."""
    result = subprocess.run([sys.executable, "-c", SAMPLING_SCRIPT.format(target=target)], cwd=REPO_ROOT,
                            env=dict(os.environ, PYTHONPATH=REPO_ROOT), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line[:4] in ("LOGI", "FED "))
    assert lines["LOGITS"] == "float16"                   # the premise: AMP computes the logits in float16
    assert lines["FED"] == f"[{float(target)}]"


# ----- 2 GPUs: uneven last batch, exact resume -----



@two_gpus
def test_two_gpus_with_an_uneven_last_batch_resume_exactly(tmp_path, in_process):
    """batch_size 13 over 2 GPUs (7 + 6 sentences) and 200 pairs (the epoch's last batch is short): stopped at
    update 9 and resumed, the job equals an uninterrupted one."""
    settings = dict(devices="gpu:0,1", batch_size=13, max_num_batches=40)
    reference = make_tree(tmp_path / "reference", **settings)
    assert in_process(reference) == 0
    base = make_tree(tmp_path / "resumed", **settings)
    assert in_process(base, stop_at=9) == 0
    assert state_of(base)["num_updates"] == 9
    assert in_process(base) == 0
    assert_same_training(base, reference)


# ----- serving on gpu:0 -----

def test_serving_on_gpu_0_matches_the_cpu(tmp_path):
    base = tmp_path / "opt_ml"
    write_tree(str(base), dict(SGD, devices="gpu:0", max_num_batches=30, checkpoint_frequency_num_batches=30),
               copy_task_pairs(200, seed=1), copy_task_pairs(20, seed=2))
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "container", "train")], cwd=REPO_ROOT,
                            env=dict(os.environ, SAGEMAKER_BASE_DIR=str(base), PYTHONPATH=REPO_ROOT),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sentences = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9"]
    cpu = [" ".join(t.target_tokens) for t in Translator.load(str(base / "model"), context=mx.cpu())
           .translate_text(sentences, DecodeOptions(beam_size=5))]
    with ServerProcess(str(base), str(tmp_path / "serve.log"), workers=1,
                       env={"SEQ2SEQ_NUM_GPUS": "1"}, ready_timeout_s=600) as server:
        served = client.translate(sentences, server.url)
        log = server.log_text()
    assert "loads the model on gpu:0" in log
    assert served == cpu
