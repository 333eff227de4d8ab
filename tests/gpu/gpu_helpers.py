"""Shared pieces of the GPU tests: the skip marker, a tiny model built on CPU and GPU with the same weights.

Everything goes through public interfaces (`Seq2SeqModel(config)` and its `forward` / `encode` /
`decode_step`, Gluon's parameter API, `beam_search`, `Translator`, the training job's entry point), so the
tests hold while the model's programs are rebuilt.
"""

import mxnet as mx
import numpy as np
import pytest

from seq2seq.constants import PAD_ID
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel


def gpu_count() -> int:
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:  # a CUDA build without a usable driver
        return 0


requires_gpu = pytest.mark.skipif(gpu_count() == 0, reason="no GPU visible to MXNet (mx.context.num_gpus() == 0)")
GPU_MARKS = [pytest.mark.gpu, requires_gpu]

SOURCE_VOCAB, TARGET_VOCAB = 23, 19
SOURCES = [[4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 4], [5, 6, 7, 8]]
TARGET_INPUT = [[2, 4, 5, 6, 7], [2, 8, 9, 0, 0], [2, 10, 11, 12, 0], [2, 13, 0, 0, 0]]
TARGET_LABELS = [[4, 5, 6, 7, 3], [8, 9, 3, 0, 0], [10, 11, 12, 3, 0], [13, 3, 0, 0, 0]]


def tiny_config(**overrides) -> ModelConfig:
    settings = dict(source_vocab_size=SOURCE_VOCAB, target_vocab_size=TARGET_VOCAB, num_embed_source=8,
                    num_embed_target=6, rnn_num_hidden=10, rnn_attention_num_hidden=7, input_feeding=False,
                    max_seq_len_source=20, max_seq_len_target=20)
    settings.update(overrides)
    return ModelConfig(**settings)


def model_on(contexts, seed: int = 3, hybridize: bool = True, **overrides) -> Seq2SeqModel:
    """A tiny model whose parameters live on every context of `contexts` with the same values."""
    mx.random.seed(seed)
    model = Seq2SeqModel(tiny_config(**overrides))
    model.collect_params().initialize(mx.init.Xavier(magnitude=2.34), ctx=list(contexts), force_reinit=True)
    if hybridize:
        model.hybridize()
    # Deferred shapes are resolved on the first call. Gluon initialises every context's copy from one
    # array; copying them again from the first context makes the premise of the tests explicit.
    source, length = padded(SOURCES, contexts[0])
    target_input, _ = padded(TARGET_INPUT, contexts[0])
    model(source, length, target_input).wait_to_read()
    for p in model.collect_params().values():
        try:
            reference = p.data(contexts[0])
        except mx.gluon.parameter.DeferredInitializationError:
            continue
        for ctx in contexts[1:]:
            p.data(ctx)[:] = reference.copyto(ctx)
    return model


def padded(rows, ctx, width=None):
    """rows of ids -> (ids `(batch, width)` float32 on ctx, lengths `(batch,)` on ctx)."""
    width = width or max(len(r) for r in rows)
    array = np.zeros((len(rows), width), dtype=np.float32)
    for i, row in enumerate(rows):
        array[i, :len(row)] = row
    return mx.nd.array(array, ctx=ctx), mx.nd.array([len(r) for r in rows], ctx=ctx)


def masked_nll(logits, labels):
    """Summed negative log-likelihood over the non-padding labels. logits `(batch, len, vocab)`."""
    log_probs = mx.nd.log_softmax(logits, axis=-1)
    mask = labels != PAD_ID
    return -(mx.nd.pick(log_probs, labels, axis=-1) * mask).sum()
