"""The endpoint with the real Translator on a tiny untrained model (save_untrained_model)."""
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from seq2seq.data import recordio_codec
from seq2seq.data.vocab import build_vocabulary
from tests.untrained_model import save_untrained_model
from seq2seq.inference.translator import Translator
from seq2seq.serving.app import TRUNCATED_HEADER, create_app
from seq2seq.serving.batching import BatchingProvider
from seq2seq.serving.providers import DirectProvider
from seq2seq.serving.settings import ServingSettings

SENTENCES = ["ein hund läuft im park", "zwei kinder spielen", "eine frau mit einem roten hut sitzt auf einer bank",
             "ein mann", "kinder spielen im park mit einem hund"]
MAX_SOURCE = 8


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("model")
    source_vocab = build_vocabulary(s.split() for s in SENTENCES)
    target_vocab = build_vocabulary("a dog runs in the park two children play".split() for _ in range(2))
    save_untrained_model(str(model_dir), source_vocab, target_vocab, seed=0, max_seq_len_source=MAX_SOURCE,
                         max_seq_len_target=12)
    return Translator.load(str(model_dir))


@pytest.fixture(scope="module")
def client(translator):
    return create_app(DirectProvider(translator), ServingSettings()).test_client()


def predictions(client, sentences, configuration=None):
    body = {"instances": [{"data": s} for s in sentences]}
    if configuration:
        body["configuration"] = configuration
    response = client.post("/invocations", json=body)
    assert response.status_code == 200, response.get_data()
    return response, response.get_json()["predictions"]


def test_json_with_attention_matrix_has_a_row_per_target_token(client, translator):
    response, result = predictions(client, SENTENCES, {"attention_matrix": "true", "beam_size": 3})
    assert len(result) == len(SENTENCES)
    target_words = set(translator.target_vocab.id_to_token)
    for sentence, prediction in zip(SENTENCES, result):
        tokens = prediction["target"].split()
        assert set(tokens) <= target_words
        matrix = np.array(prediction["matrix"])
        assert matrix.shape == (len(tokens), min(len(sentence.split()), MAX_SOURCE))
        if len(tokens):
            np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-4)
    assert response.headers[TRUNCATED_HEADER] == "2"


def test_recordio_and_jsonlines_give_the_same_translations_as_json(client, translator):
    _, json_result = predictions(client, SENTENCES)
    sources = [translator.source_vocab.encode(s.split()) for s in SENTENCES]
    response = client.post("/invocations", data=recordio_codec.pairs_to_bytes((s, []) for s in sources),
                           headers={"Content-Type": "application/x-recordio-protobuf"})
    assert response.status_code == 200
    targets = [t for _, t in recordio_codec.read_pairs_from_bytes(response.get_data(), require_target=False)]
    assert [" ".join(translator.target_vocab.decode(t)) for t in targets] == [p["target"] for p in json_result]
    body = "".join(json.dumps({"source": s}) + "\n" for s in SENTENCES)
    response = client.post("/invocations", data=body.encode(), headers={"Content-Type": "application/jsonlines"})
    lines = [json.loads(line)["target"] for line in response.get_data(as_text=True).splitlines()]
    assert lines == [p["target"] for p in json_result]


def test_max_output_length_bounds_the_output(client):
    _, result = predictions(client, SENTENCES, {"max_output_length": 2, "beam_size": 1})
    assert all(len(p["target"].split()) <= 2 for p in result)


def test_batched_concurrent_decoding_matches_sequential_decoding(translator):
    provider = BatchingProvider(lambda: translator, batch_wait_ms=20, max_batch_sentences=16)
    provider.start()
    assert provider.wait_until_ready(10)
    options = translator.default_options
    sources = [translator.source_vocab.encode(s.split()) for s in SENTENCES * 2]
    sequential = [translator.translate_ids([source], options)[0] for source in sources]
    with ThreadPoolExecutor(max_workers=len(sources)) as pool:
        batched = list(pool.map(lambda s: provider.submit([s], options).result(30)[0], sources))
    assert [t.target_ids for t in batched] == [t.target_ids for t in sequential]
    np.testing.assert_allclose([t.score for t in batched], [t.score for t in sequential], rtol=1e-4, atol=1e-5)
    assert max(provider.recent_batch_sizes) > 1
