"""evaluation.validation_bleu: the checkpoint's BLEU, decoded in chunks outside the training loop."""
import mxnet as mx
import numpy as np
import pytest
import sacrebleu

from seq2seq.data.dataset import ParallelData
from seq2seq.data.vocab import build_vocabulary
from seq2seq.inference.search import RESERVED_IDS
from seq2seq.inference.translator import DecodeOptions, Translator
from seq2seq.training import evaluation
from tests.untrained_model import save_untrained_model


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    words = "ein hund läuft im park zwei kinder spielen".split()
    model_dir = str(tmp_path_factory.mktemp("model"))
    save_untrained_model(model_dir, build_vocabulary([words]), build_vocabulary([words]), seed=3,
                         max_seq_len_source=8, max_seq_len_target=8)
    return Translator.load(model_dir)


def sample_data(size: int) -> ParallelData:
    rng = np.random.RandomState(0)
    pairs = [(rng.randint(4, 12, size=rng.randint(1, 6)).astype(np.int32),
              rng.randint(4, 12, size=rng.randint(1, 6)).astype(np.int32)) for _ in range(size)]
    return ParallelData([s for s, _ in pairs], [t for _, t in pairs])


def test_it_is_sacrebleu_of_the_translations_of_the_first_sentences(translator, monkeypatch):
    monkeypatch.setattr(evaluation, "BLEU_CHUNK_SENTENCES", 3)          # several chunks
    data = sample_data(10)
    options = DecodeOptions(beam_size=2)
    decoded = evaluation.validation_bleu(translator.model, data, translator.source_vocab, translator.target_vocab,
                                         mx.cpu(), options, sample_size=7)
    assert decoded.shortlist_coverage is None
    score = decoded.bleu
    translations = translator.translate_ids([list(s) for s in data.sources[:7]], options)
    hypotheses = [" ".join(t.target_tokens) for t in translations]
    references = [" ".join(translator.target_vocab.decode(list(t))) for t in data.targets[:7]]
    assert score == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score)


def test_a_stop_request_between_chunks_gives_none(translator, monkeypatch):
    monkeypatch.setattr(evaluation, "BLEU_CHUNK_SENTENCES", 2)
    calls = []

    def stop_after_two_chunks():
        calls.append(1)
        return len(calls) > 2

    assert evaluation.validation_bleu(translator.model, sample_data(10), translator.source_vocab,
                                      translator.target_vocab, mx.cpu(), DecodeOptions(beam_size=2), -1,
                                      should_stop=stop_after_two_chunks) is None
    assert len(calls) == 3


def test_with_a_shortlist_the_coverage_of_the_full_search_is_reported(translator, monkeypatch):
    from seq2seq.inference import shortlist as shortlist_module
    from seq2seq.inference.shortlist import Shortlist

    monkeypatch.setattr(shortlist_module, "CANDIDATE_SIZES", (5,))     # no top-up: the reserved ids and one more
    data = sample_data(10)
    options = DecodeOptions(beam_size=2)
    full = translator.translate_ids([list(s) for s in data.sources], options)
    emitted = sorted({t for translation in full for t in translation.target_ids} - set(RESERVED_IDS))
    assert len(emitted) >= 2
    vocab_size = len(translator.source_vocab)
    # Every source id's shortlist holds only the first emitted word: the candidates are it and the reserved ids.
    shortlist = Shortlist(np.full((vocab_size, 1), emitted[0], dtype=np.int32),
                          np.arange(len(translator.target_vocab), dtype=np.int32), 1, 0)
    decoded = evaluation.validation_bleu(translator.model, data, translator.source_vocab, translator.target_vocab,
                                         mx.cpu(), options, -1, shortlist=shortlist)
    outputs = [t for translation in full for t in translation.target_ids]
    held = sum(t in RESERVED_IDS or t == emitted[0] for t in outputs)
    assert decoded.shortlist_coverage == pytest.approx(held / len(outputs)) and held < len(outputs)
