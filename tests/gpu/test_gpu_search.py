"""Beam and greedy search on a GPU give the CPU's translations, through `beam_search` and `Translator`."""

import mxnet as mx
import numpy as np
import pytest

from seq2seq.data.vocab import build_vocabulary
from seq2seq.inference.search import beam_search
from seq2seq.inference.translator import DecodeOptions, Translator
from tests.gpu.gpu_helpers import GPU_MARKS, SOURCE_VOCAB, SOURCES, TARGET_VOCAB, model_on, padded

pytestmark = GPU_MARKS

CONFIGS = {
    "lstm-input-feeding": {"input_feeding": True},
    "lstm-fused": {"input_feeding": False},
    "gru-2-layers": {"rnn_cell_type": "gru", "num_layers_decoder": 2, "input_feeding": True},
}


def search_on(model, ctx, beam_size, attention=False):
    source, length = padded(SOURCES, ctx)
    max_lengths = np.array([len(s) * 2 + 2 for s in SOURCES])
    return beam_search(model, source, length, max_lengths, beam_size=beam_size, alpha=1.0, beta=0.0,
                       return_attention=attention)


@pytest.mark.parametrize("beam_size", [1, 3, 5])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_beam_search_same_on_gpu_and_cpu(name, beam_size):
    model = model_on([mx.cpu(), mx.gpu(0)], **CONFIGS[name])
    cpu = search_on(model, mx.cpu(), beam_size, attention=True)
    gpu = search_on(model, mx.gpu(0), beam_size, attention=True)
    assert [h.token_ids for h in gpu] == [h.token_ids for h in cpu]
    assert [h.score for h in gpu] == pytest.approx([h.score for h in cpu], rel=1e-4, abs=1e-5)
    for g, c in zip(gpu, cpu):
        np.testing.assert_allclose(g.attention, c.attention, rtol=1e-4, atol=1e-5)


def vocabularies():
    source = build_vocabulary([[f"s{i}" for i in range(SOURCE_VOCAB - 4)]])
    target = build_vocabulary([[f"t{i}" for i in range(TARGET_VOCAB - 4)]])
    assert len(source.id_to_token) == SOURCE_VOCAB and len(target.id_to_token) == TARGET_VOCAB
    return source, target


def test_translator_on_gpu_matches_cpu():
    model = model_on([mx.cpu(), mx.gpu(0)], input_feeding=True)
    source_vocab, target_vocab = vocabularies()
    sentences = ["s1 s2 s3", "s4 s5 s6 s7 s8 s9", "s10", "s11 s12 s13 s14"] * 9  # several length-sorted batches
    options = DecodeOptions(beam_size=5, attention_matrix=True)
    cpu, gpu = [Translator(model, source_vocab, target_vocab, context=ctx, batch_sentences=8)
                .translate_text(sentences, options) for ctx in (mx.cpu(), mx.gpu(0))]
    assert [r.target_tokens for r in gpu] == [r.target_tokens for r in cpu]
    assert [r.score for r in gpu] == pytest.approx([r.score for r in cpu], rel=1e-4, abs=1e-5)
    for g, c in zip(gpu, cpu):
        assert g.attention.shape == c.attention.shape
