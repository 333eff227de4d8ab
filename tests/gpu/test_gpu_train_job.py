"""The training job on a GPU through the container's entry point: devices=gpu:0 in fp32 and fp16 (AMP loss scaling).

Each job trains a tiny copy-task model; the checks compare its validation metrics with the same job on the CPU
(fp32) and on the GPU in fp32 (fp16), and load the exported model for translation.
"""

import json
import os
import subprocess
import sys

import mxnet as mx
import pytest

from seq2seq.inference.translator import DecodeOptions, Translator
from tests.gpu.gpu_helpers import GPU_MARKS
from tests.sagemaker_tree import REPO_ROOT, TINY_MODEL, copy_task_pairs, job_environment, read_failure, write_tree

pytestmark = GPU_MARKS

JOB = dict(TINY_MODEL, max_num_batches=60, checkpoint_frequency_num_batches=30, bleu_sample_size=10,
           beam_size=2, seed=7)
# Plain SGD without clipping: unlike Adam it is not invariant to the gradient's scale, so a loss scale that
# is not undone (or overflowing fp16 gradients that are applied) shows in the metrics.
SGD = dict(JOB, optimizer_type="sgd", learning_rate=0.5, clip_gradient=-1)


def run_job(base, hyperparameters, timeout=600):
    write_tree(str(base), hyperparameters, copy_task_pairs(400, seed=1), copy_task_pairs(40, seed=2))
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "container", "train")], cwd=REPO_ROOT,
                            env=job_environment(str(base)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=timeout)
    assert result.returncode == 0, (read_failure(str(base)) or "") + result.stdout[-4000:]
    assert os.path.exists(os.path.join(base, "output", "success"))
    with open(os.path.join(base, "output", "data", "metrics.json")) as stream:
        return json.load(stream), result.stdout


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """Finished jobs by name: (metric history, stdout, base dir)."""
    runs = {}
    for name, hps in (("cpu", dict(JOB, devices="cpu")), ("gpu", dict(JOB, devices="gpu:0")),
                      ("sgd-gpu-fp32", dict(SGD, devices="gpu:0")),
                      ("sgd-gpu-fp16", dict(SGD, devices="gpu:0", precision="fp16"))):
        base = tmp_path_factory.mktemp(f"opt_ml_{name}")
        history, stdout = run_job(base, hps)
        runs[name] = (history, stdout, str(base))
    return runs


def validation(history, key="validation_perplexity"):
    return [record[key] for record in history]


def test_gpu_job_trains_like_the_cpu_job(jobs):
    cpu, gpu = validation(jobs["cpu"][0]), validation(jobs["gpu"][0])
    assert len(gpu) == len(cpu) == 2
    # Same data order and initialisation; cuDNN and oneDNN round differently, so the curves agree closely
    # but not bit for bit.
    assert gpu == pytest.approx(cpu, rel=0.05)
    assert gpu[-1] < gpu[0]


def test_gpu_job_logs_its_device_and_exports_a_model_for_gpu_and_cpu(jobs):
    _, stdout, base = jobs["gpu"]
    assert "gpu(0)" in stdout
    model_dir = os.path.join(base, "model")
    sentences = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9"]
    gpu, cpu = [[r.target_tokens for r in Translator.load(model_dir, context=ctx)
                 .translate_text(sentences, DecodeOptions(beam_size=2))] for ctx in (mx.gpu(0), mx.cpu())]
    assert gpu == cpu


def test_fp16_loss_scaling_trains_like_fp32(jobs):
    fp32, fp16 = validation(jobs["sgd-gpu-fp32"][0]), validation(jobs["sgd-gpu-fp16"][0])
    assert all(v == v and v < float("inf") for v in fp16), fp16          # no NaN or overflow left in
    assert fp16[-1] < fp16[0]
    # A loss scale applied to the gradients (x 2**16 by default) would make SGD diverge at once.
    assert fp16 == pytest.approx(fp32, rel=0.1)


def test_fp16_model_serves_on_cpu(jobs):
    _, _, base = jobs["sgd-gpu-fp16"]
    translator = Translator.load(os.path.join(base, "model"), context=mx.cpu())
    results = translator.translate_text(["w1 w2 w3"], DecodeOptions(beam_size=2))
    assert len(results) == 1
    assert set(results[0].target_tokens) <= set(translator.target_vocab.id_to_token)
