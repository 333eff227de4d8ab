"""The decoding shortlist: the IBM Model 1 table, the per-batch candidates, and search restricted to them."""

import mxnet as mx
import numpy as np
import pytest

from bench.one_program_search import beam_search as one_program_beam_search
from seq2seq.constants import EOS_ID, PAD_ID
from seq2seq.data.vocab import Vocabulary
from seq2seq.errors import UserError
from seq2seq.inference.search import RESERVED_IDS, SearchOptions, beam_search, shortlist_log_probs
from seq2seq.inference.shortlist import CANDIDATE_SIZES, Shortlist, target_frequency_order
from seq2seq.inference.translator import DecodeOptions, Translator
from seq2seq.lexicon import estimate_lexical_table
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel
from seq2seq.model_dir import load_shortlist, write_model_dir

SOURCES = [[4, 5, 6, 7], [8, 9], [10, 11, 12, 13, 14, 4, 5]]


def word_for_word_corpus(num_words=60, sentences=3000, seed=0):
    """Source words 4..num_words+3; each translates to a fixed other id; target order shuffled; every target
    sentence also holds a frequent filler token (id 4 of the target side), so raw co-occurrence would rank it
    first for every source word."""
    rng = np.random.RandomState(seed)
    words = np.arange(4, num_words + 4)
    translation = dict(zip(words, rng.permutation(words) + 1))       # target ids 5..num_words+4
    sources, targets = [], []
    zipf = 1.0 / np.arange(1, num_words + 1)
    for _ in range(sentences):
        source = rng.choice(words, size=rng.randint(3, 9), p=zipf / zipf.sum())
        target = np.array([translation[w] for w in source] + [4])
        rng.shuffle(target)
        sources.append(source.astype(np.int32))
        targets.append(target.astype(np.int32))
    return sources, targets, translation


def test_model_1_puts_the_true_translation_first():
    sources, targets, translation = word_for_word_corpus()
    table = estimate_lexical_table(sources, targets, 70, 70, iterations=5)
    top = table.top_translations(70, 3)
    seen = sorted({int(w) for s in sources for w in s})
    correct = sum(int(top[w, 0]) == translation[w] for w in seen)
    assert correct / len(seen) >= 0.95, (correct, len(seen))
    cooccurrence = estimate_lexical_table(sources, targets, 70, 70, iterations=1).top_translations(70, 1)
    assert sum(int(cooccurrence[w, 0]) == 4 for w in seen) > sum(int(top[w, 0]) == 4 for w in seen), \
        "EM should move the frequent filler token down from co-occurrence"


def test_top_translations_fill_short_rows_with_pad():
    table = estimate_lexical_table([np.array([4])], [np.array([6, 7])], 6, 8)
    top = table.top_translations(6, 4)
    assert sorted(top[4, :2].tolist()) == [6, 7] and top[4, 2:].tolist() == [PAD_ID, PAD_ID]
    assert (top[5] == PAD_ID).all()                     # a source id never seen


def test_frequency_order_and_candidates():
    by_frequency = target_frequency_order([np.array([9, 9, 9, 7, 7, 5])], 2000)
    assert by_frequency[:3].tolist() == [9, 7, 5] and sorted(by_frequency.tolist()) == list(range(2000))
    translations = np.full((20, 2), PAD_ID, dtype=np.int32)
    translations[4] = [100, 101]
    translations[5] = [102, 103]
    shortlist = Shortlist(translations, by_frequency, k=2, frequent=2)
    assert shortlist.union([[4], [5]]).tolist() == [0, 1, 2, 3, 7, 9, 100, 101, 102, 103]
    assert shortlist.with_sizes(k=1).union([[4, 5]]).tolist() == [0, 1, 2, 3, 7, 9, 100, 102]
    candidates = shortlist.candidates([[4], [5]])
    assert len(candidates) == CANDIDATE_SIZES[0] and len(set(candidates.tolist())) == len(candidates)
    assert tuple(candidates[:4]) == RESERVED_IDS and (np.diff(candidates) > 0).all()
    assert set(shortlist.union([[4], [5]]).tolist()) <= set(candidates.tolist())
    assert 5 in candidates.tolist()                      # topped up with the next most frequent id
    assert Shortlist(translations, by_frequency[:300], 2, 2).candidates([[4]]) is None   # 256 of 300: all


def test_coverage_counts_the_candidates_decoding_scores():
    by_frequency = target_frequency_order([np.array([9, 9, 9, 7, 7, 5])], 2000)      # then 0, 1, 2, ... by id
    translations = np.full((20, 2), PAD_ID, dtype=np.int32)
    translations[4] = [1000, 1001]
    translations[5] = [1002, 1003]
    shortlist = Shortlist(translations, by_frequency, k=2, frequent=2)
    outputs = [[1000, 9, 1002, 200], [1003, 1500]]
    # Alone, [4] scores 1000 (its row), 9 (frequent) and 200 (topped up to 256 ids), not 1002 (the row of 5).
    assert shortlist.coverage([[4], [5]], outputs) == 4 / 6
    # Decoded in one batch, the sentences share their rows.
    assert shortlist.coverage([[4], [5]], outputs, batches=[[0, 1]]) == 5 / 6
    # When the whole vocabulary is scored, everything is held.
    assert Shortlist(translations, by_frequency[:300], 2, 2).coverage([[4]], [[299, 1]]) == 1.0


@pytest.fixture(scope="module")
def model():
    config = ModelConfig(source_vocab_size=15, target_vocab_size=12, num_embed_source=8, num_embed_target=8,
                         rnn_num_hidden=12, rnn_attention_num_hidden=8, input_feeding=False, max_seq_len_source=10,
                         max_seq_len_target=10)
    mx.random.seed(5)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(magnitude=3.0), mx.cpu())
    model.hybridize()
    return model


def batch_of(sources):
    array = np.zeros((len(sources), max(len(s) for s in sources)), dtype=np.float32)
    for i, s in enumerate(sources):
        array[i, :len(s)] = s
    return mx.nd.array(array), mx.nd.array([len(s) for s in sources])


@pytest.mark.parametrize("beam_size", [1, 3])
def test_shortlist_search_equals_full_search_when_it_holds_every_emitted_token(model, beam_size):
    """Tokens outside the shortlist get an output bias of -1e4 (probability e^-1e4): the full search never
    emits them and the normalisation over the shortlist loses nothing, so both searches agree exactly."""
    candidates = np.array([0, 1, 2, 3, 5, 7, 8, 10])
    bias = model.decoder.output_layer.bias
    original = bias.data().copy()
    outside = np.setdiff1d(np.arange(12), candidates)
    bias.set_data(original + mx.nd.array(np.isin(np.arange(12), outside) * -1e4))
    try:
        source, length = batch_of(SOURCES)
        limits = np.array([8, 8, 8])
        full = beam_search(model, source, length, limits, beam_size, 0.8, 1.0, return_attention=True)
        short = beam_search(model, source, length, limits, beam_size, 0.8, 1.0, return_attention=True,
                            candidate_ids=candidates)
    finally:
        bias.set_data(original)
    assert any(h.token_ids for h in full)
    for a, b in zip(full, short):
        assert set(a.token_ids) <= set(candidates.tolist())
        assert a.token_ids == b.token_ids
        np.testing.assert_allclose(a.score, b.score, rtol=1e-5)
        np.testing.assert_allclose(a.attention, b.attention, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_shortlist_scores_are_normalised_over_the_whole_vocabulary(model, beam_size):
    """The ids outside the shortlist get an output bias 5 lower: never in a beam, yet they hold a share of the
    probability mass that a normalisation over the candidates alone would drop. The factors that estimate their
    logits are exact at full rank (hidden 12 < REST_RANK), so the scores are the full search's log-probabilities."""
    candidates = np.array([0, 1, 2, 3, 5, 7, 8, 10])
    outside = np.isin(np.arange(12), candidates, invert=True)
    bias = model.decoder.output_layer.bias
    original = bias.data().copy()
    bias.set_data(original + mx.nd.array(outside * -5.0))
    try:
        source, length = batch_of(SOURCES)
        encoded, states = model.encode(source, length)
        first = mx.nd.softmax(model.decode_step(mx.nd.array([2, 2, 2]), states, encoded)[0]).asnumpy()
        limits = np.array([8, 8, 8])
        full = beam_search(model, source, length, limits, beam_size, 0.8, 1.0)
        short = beam_search(model, source, length, limits, beam_size, 0.8, 1.0, candidate_ids=candidates)
        renormalised = beam_search(model, source, length, limits, beam_size, 0.8, 1.0, candidate_ids=candidates,
                                   rest_rank=0)
    finally:
        bias.set_data(original)
    assert (first[:, outside].sum(axis=1) > 1e-3).all()         # mass a renormalised search would give away
    assert any(h.token_ids for h in full)
    for a, b, c in zip(full, short, renormalised):
        assert set(a.token_ids) <= set(candidates.tolist())
        assert a.token_ids == b.token_ids
        np.testing.assert_allclose(a.score, b.score, rtol=1e-5)
        assert c.score > a.score + 1e-4                          # normalised over the candidates only: inflated


def test_a_shortlist_of_the_whole_vocabulary_is_the_full_search(model):
    source, length = batch_of(SOURCES)
    limits = np.array([8, 8, 8])
    full = beam_search(model, source, length, limits, 3, 0.8, 1.0)
    everything = beam_search(model, source, length, limits, 3, 0.8, 1.0, candidate_ids=np.arange(12))
    for a, b in zip(full, everything):
        assert a.token_ids == b.token_ids
        np.testing.assert_allclose(a.score, b.score, rtol=1e-6)


def test_shortlist_log_probs_match_the_full_log_softmax_and_the_factors_are_the_truncated_svd(model):
    rng = np.random.RandomState(0)
    logits = rng.normal(scale=3.0, size=(4, 10)).astype(np.float32)
    log_probs = shortlist_log_probs(mx.nd, mx.nd.array(logits[:, :6]), mx.nd.array(logits[:, 6:]), 6).asnumpy()
    whole = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(log_probs, whole[:, :6], rtol=1e-5, atol=1e-5)
    weight = model.decoder.output_layer.weight.data().asnumpy().astype(np.float64)      # (12, 12)
    projection, factor = (a.asnumpy().astype(np.float64) for a in model.output_factors(4))
    assert projection.shape == (4, 12) and factor.shape == (12, 4)
    singular = np.linalg.svd(weight, compute_uv=False)
    error = np.linalg.norm(weight - factor @ projection)            # Eckart-Young: the dropped singular values
    np.testing.assert_allclose(error, np.sqrt((singular[4:] ** 2).sum()), rtol=1e-4)
    projection, factor = (a.asnumpy() for a in model.output_factors(64))
    np.testing.assert_allclose(factor @ projection, weight, rtol=1e-4, atol=1e-5)


def test_a_shortlist_missing_needed_tokens_emits_only_its_own_ids(model):
    source, length = batch_of(SOURCES)
    full = beam_search(model, source, length, np.array([9, 9, 9]), 3)
    emitted = sorted({t for h in full for t in h.token_ids})
    assert emitted
    candidates = np.array(list(RESERVED_IDS) + [t for t in range(4, 12) if t != emitted[0]][:3])
    short = beam_search(model, source, length, np.array([9, 9, 9]), 3, candidate_ids=candidates)
    for hypothesis in short:
        assert set(hypothesis.token_ids) <= set(candidates.tolist()) - {PAD_ID, 2, EOS_ID}
        assert np.isfinite(hypothesis.score)
    with pytest.raises(ValueError, match="reserved"):
        beam_search(model, source, length, np.array([9, 9, 9]), 3, candidate_ids=np.array([4, 5, 6]))


def vocabularies():
    return (Vocabulary({t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>"] + [f"s{i}" for i in range(11)])}),
            Vocabulary({t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(8)])}))


def test_model_dir_keeps_the_table_and_a_directory_without_one_decodes_as_before(model, tmp_path):
    source_vocab, target_vocab = vocabularies()
    translations = np.tile(np.array([[5, 6]], dtype=np.int32), (15, 1))
    shortlist = Shortlist(translations, target_frequency_order([np.array([7, 7, 8])], 12), 2, 1)
    with_table, without = tmp_path / "with", tmp_path / "without"
    write_model_dir(str(with_table), model, source_vocab, target_vocab, {"beam_size": 3}, shortlist=shortlist)
    write_model_dir(str(without), model, source_vocab, target_vocab, {"beam_size": 3})
    loaded = load_shortlist(str(with_table), 15, 12)
    np.testing.assert_array_equal(loaded.translations, translations)
    np.testing.assert_array_equal(loaded.by_frequency, shortlist.by_frequency)
    assert (loaded.k, loaded.frequent) == (2, 1)
    assert load_shortlist(str(without), 15, 12) is None
    old = Translator.load(str(without))
    assert old.shortlist is None
    results = old.translate_ids(SOURCES)
    # The translator sorts by length and derives its own limits; compare sentence by sentence instead.
    for ids, translation in zip(SOURCES, results):
        alone, = one_program_beam_search(model, *batch_of([ids]), np.array([translation_limit(old, ids)]), 3,
                                         1.0, 0.0)
        assert translation.target_ids == alone.token_ids
    # Rewriting the directory without a table removes the old one.
    write_model_dir(str(with_table), model, source_vocab, target_vocab, {"beam_size": 3})
    assert load_shortlist(str(with_table), 15, 12) is None


def translation_limit(translator, ids):
    from seq2seq.inference.translator import max_output_length
    return max_output_length(translator.model.config, len(ids))


def test_shortlist_off_equals_the_previous_search_exactly(model):
    source_vocab, target_vocab = vocabularies()
    shortlist = Shortlist(np.tile(np.array([[5]], dtype=np.int32), (15, 1)), np.arange(12, dtype=np.int32), 1, 0)
    translator = Translator(model, source_vocab, target_vocab, DecodeOptions(beam_size=3), shortlist=shortlist)
    source, length = batch_of(SOURCES)
    previous = one_program_beam_search(model, source, length, np.array([7, 7, 7]), 3, 1.0, 0.0, True)
    current = beam_search(model, source, length, np.array([7, 7, 7]), 3, 1.0, 0.0, True)
    for a, b in zip(previous, current):
        assert a.token_ids == b.token_ids
        np.testing.assert_allclose(a.score, b.score, rtol=1e-6)
        np.testing.assert_allclose(a.attention, b.attention, rtol=1e-6)
    off = translator.translate_ids(SOURCES, DecodeOptions(beam_size=3, shortlist=False))
    for ids, translation in zip(SOURCES, off):
        alone, = one_program_beam_search(model, *batch_of([ids]), np.array([translation_limit(translator, ids)]),
                                         3, 1.0, 0.0)
        assert translation.target_ids == alone.token_ids
        np.testing.assert_allclose(translation.score, alone.score, rtol=1e-6)


def test_unreadable_or_mismatched_table_is_a_user_error(model, tmp_path):
    source_vocab, target_vocab = vocabularies()
    directory = tmp_path / "m"
    write_model_dir(str(directory), model, source_vocab, target_vocab, {},
                    shortlist=Shortlist(np.zeros((15, 2), dtype=np.int32), np.arange(12, dtype=np.int32), 2, 1))
    with pytest.raises(UserError, match="does not fit the vocabularies"):
        load_shortlist(str(directory), 16, 12)
    (directory / "shortlist.npz").write_bytes(b"not a table")
    with pytest.raises(UserError, match="unreadable shortlist"):
        load_shortlist(str(directory), 15, 12)


def test_block_ngram_repeat_forbids_repeats(model):
    source, length = batch_of(SOURCES)
    limits = np.array([10, 10, 10])
    free = beam_search(model, source, length, limits, 3)
    assert any(len(set(h.token_ids)) < len(h.token_ids) for h in free), "the fixture should repeat a token"
    for n in (1, 2):
        blocked = beam_search(model, source, length, limits, 3, options=SearchOptions(block_ngram_repeat=n))
        for hypothesis in blocked:
            grams = [tuple(hypothesis.token_ids[i:i + n]) for i in range(len(hypothesis.token_ids) - n + 1)]
            assert len(grams) == len(set(grams)), (n, hypothesis.token_ids)


def test_coverage_penalty_adds_the_gnmt_term(model):
    source, length = batch_of(SOURCES)
    limits = np.array([8, 8, 8])
    beta = 0.5
    penalised = beam_search(model, source, length, limits, 1, 0.0, 0.0, return_attention=True,
                            options=SearchOptions(coverage_penalty=beta))
    plain = beam_search(model, source, length, limits, 1, 0.0, 0.0, return_attention=True)
    for p, q, ids in zip(penalised, plain, SOURCES):
        assert p.token_ids == q.token_ids                  # greedy: the penalty only changes the final score
        # The attention of the emitted tokens and of the final </s> step count; the hypothesis keeps only the former.
        assert p.score <= q.score + 1e-6
        coverage_without_eos = p.attention[:, :len(ids)].sum(axis=0)
        lower = beta * np.log(np.minimum(np.maximum(coverage_without_eos, 1e-30), 1.0)).sum()
        assert p.score - q.score >= lower - 1e-4


def test_lexicon_command_adds_a_shortlist_to_a_model_directory(model, tmp_path, capsys):
    from seq2seq import lexicon
    from seq2seq.data.recordio_codec import pairs_to_bytes

    source_vocab, target_vocab = vocabularies()
    directory = tmp_path / "model"
    write_model_dir(str(directory), model, source_vocab, target_vocab, {})
    train = tmp_path / "train.rec"
    train.write_bytes(pairs_to_bytes([([4, 5], [6, 7]), ([4, 9], [6, 11]), ([5], [7])]))
    assert lexicon.main(["--model", str(directory), "--train", str(train), "--k", "2", "--frequent", "1"]) == 0
    shortlist = load_shortlist(str(directory), 15, 12)
    assert shortlist.k == 2 and shortlist.frequent == 1 and shortlist.by_frequency[0] == 6
    assert shortlist.translations[4, 0] == 6 and shortlist.translations[5, 0] == 7
    bad = tmp_path / "bad.rec"
    bad.write_bytes(pairs_to_bytes([([4, 40], [6])]))
    assert lexicon.main(["--model", str(directory), "--train", str(bad)]) == 1
    assert "source id 40 is outside the model's source vocabulary" in capsys.readouterr().err


def test_a_fixed_model_encodes_as_before_and_follows_a_parameter_load(model, tmp_path):
    """fix_parameters keeps the encoder's flat parameters; load_parameters refreshes them."""
    config = model.config
    fixed = Seq2SeqModel(config)
    fixed.initialize_parameters(mx.init.Xavier(), mx.cpu())
    fixed.hybridize()
    fixed.fix_parameters()
    source, length = batch_of(SOURCES)
    before = fixed.encode(source, length)[0].encoded.asnumpy()
    path = str(tmp_path / "params")
    model.save_parameters(path)
    fixed.load_parameters(path, ctx=mx.cpu())
    np.testing.assert_allclose(fixed.encode(source, length)[0].encoded.asnumpy(),
                               model.encode(source, length)[0].encoded.asnumpy(), rtol=1e-6)
    assert not np.allclose(before, fixed.encode(source, length)[0].encoded.asnumpy())
