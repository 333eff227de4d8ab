"""The model's programs on a GPU give the CPU's results: teacher-forced training (fused without input feeding,
unrolled / step-wise with it), its gradients, encode and decode_step."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from tests.gpu.gpu_helpers import (GPU_MARKS, SOURCES, TARGET_INPUT, TARGET_LABELS, masked_nll, model_on,
                                   padded)

pytestmark = GPU_MARKS

# cuDNN's RNN kernels and cuBLAS sum in another order than oneDNN: agreement to float32 rounding, not bits.
RTOL, ATOL = 1e-4, 1e-5

CONFIGS = {
    "lstm-fused": {"input_feeding": False},
    "lstm-input-feeding": {"input_feeding": True},
    "gru-fused": {"rnn_cell_type": "gru", "input_feeding": False},
    "gru-input-feeding": {"rnn_cell_type": "gru", "input_feeding": True},
    "lstm-2-layers-input-feeding": {"num_layers_encoder": 2, "num_layers_decoder": 2, "input_feeding": True},
    "lstm-2-layers-fused-bilinear": {"num_layers_decoder": 2, "rnn_attention_type": "bilinear",
                                     "input_feeding": False},
}


def loss_and_grads(model, ctx):
    source, length = padded(SOURCES, ctx)
    target_input, _ = padded(TARGET_INPUT, ctx)
    labels, _ = padded(TARGET_LABELS, ctx)
    params = model.collect_params()
    for p in params.values():
        if p.grad_req != "null":
            p.grad(ctx)[:] = 0
    with autograd.record():
        logits = model(source, length, target_input)
        loss = masked_nll(logits, labels)
    loss.backward()
    grads = {name: p.grad(ctx).asnumpy() for name, p in params.items() if p.grad_req != "null"}
    return logits.asnumpy(), float(loss.asscalar()), grads


@pytest.mark.parametrize("hybridize", [True, False], ids=["hybridized", "imperative"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_training_program_loss_and_gradients_match_cpu(name, hybridize):
    model = model_on([mx.cpu(), mx.gpu(0)], hybridize=hybridize, **CONFIGS[name])
    cpu_logits, cpu_loss, cpu_grads = loss_and_grads(model, mx.cpu())
    gpu_logits, gpu_loss, gpu_grads = loss_and_grads(model, mx.gpu(0))
    np.testing.assert_allclose(gpu_logits, cpu_logits, rtol=RTOL, atol=ATOL)
    assert gpu_loss == pytest.approx(cpu_loss, rel=RTOL)
    assert gpu_grads.keys() == cpu_grads.keys()
    for key in cpu_grads:
        np.testing.assert_allclose(gpu_grads[key], cpu_grads[key], rtol=1e-3, atol=1e-5, err_msg=key)
    assert any(np.abs(g).sum() > 0 for g in cpu_grads.values())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_encode_and_decode_steps_match_cpu(name):
    model = model_on([mx.cpu(), mx.gpu(0)], **CONFIGS[name])
    outputs = []
    for ctx in (mx.cpu(), mx.gpu(0)):
        source, length = padded(SOURCES, ctx)
        target_input, _ = padded(TARGET_INPUT, ctx)
        encoded, states = model.encode(source, length)
        steps = []
        for t in range(target_input.shape[1]):
            logits, attention, states = model.decode_step(target_input[:, t], states, encoded)
            assert logits.context == ctx and attention.context == ctx
            steps.append((logits.asnumpy(), attention.asnumpy()))
        outputs.append((encoded.encoded.asnumpy(), steps))
    cpu, gpu = outputs
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=RTOL, atol=ATOL)
    for (gpu_logits, gpu_attention), (cpu_logits, cpu_attention) in zip(gpu[1], cpu[1]):
        np.testing.assert_allclose(gpu_logits, cpu_logits, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(gpu_attention, cpu_attention, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["lstm-input-feeding", "gru-input-feeding"])
def test_teacher_forced_training_equals_decode_steps_on_gpu(name):
    """The training program (however it is built: unrolled or step by step) and decode_step agree on a GPU."""
    ctx = mx.gpu(0)
    model = model_on([ctx], **CONFIGS[name])
    source, length = padded(SOURCES, ctx)
    target_input, _ = padded(TARGET_INPUT, ctx)
    teacher_forced = model(source, length, target_input).asnumpy()
    encoded, states = model.encode(source, length)
    for t in range(target_input.shape[1]):
        logits, _, states = model.decode_step(target_input[:, t], states, encoded)
        np.testing.assert_allclose(logits.asnumpy(), teacher_forced[:, t], rtol=RTOL, atol=ATOL)
