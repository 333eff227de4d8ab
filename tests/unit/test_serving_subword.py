"""The endpoint and `python -m seq2seq.translate` with subword models: raw text in, raw text out."""
import io
import json

import numpy as np
import pytest

from recordio_tools.__main__ import main as recordio_tools
from seq2seq.data import recordio_codec
from seq2seq.data.subword import WORD_BOUNDARY, find_subword_models
from seq2seq.data.vocab import Vocabulary
from tests.untrained_model import save_untrained_model
from seq2seq.inference.translator import DecodeOptions, Translation, Translator
from seq2seq.serving.app import TRUNCATED_HEADER, create_app
from seq2seq.serving.providers import DirectProvider
from seq2seq.serving.settings import ServingSettings
from seq2seq import translate

ENGLISH = ["A man rides a bike.", "Two dogs, one cat!", "Is it \"real\"?", "She smiles (a lot); he doesn't.",
           "The café is open."]
GERMAN = ["Ein Mann fährt Fahrrad.", "Zwei Hunde, eine Katze!", "Ist es „echt“?", "Sie lächelt (viel); er nicht.",
          "Das Café ist offen."]
MAX_SOURCE = 30


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    directory = tmp_path_factory.mktemp("prepared")
    for name, lines in (("train.en", ENGLISH * 50), ("train.de", GERMAN * 50), ("val.en", ENGLISH),
                        ("val.de", GERMAN)):
        (directory / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    assert recordio_tools(["prepare", "--train-source", str(directory / "train.en"), "--train-target",
                           str(directory / "train.de"), "--val-source", str(directory / "val.en"),
                           "--val-target", str(directory / "val.de"), "--output", str(directory / "out"),
                           "--subword", "unigram", "--subword-vocab-size", "100", "--quiet"]) == 0
    return directory / "out"


class CopyingTranslator:
    """Answers every source with the target pieces of the German sentence at the same position in the
    data (looked up by its source ids), one-hot attention; the Translator interface the app uses."""

    def __init__(self, prepared):
        self.subword = find_subword_models(prepared)
        self.source_vocab = self.subword.source.vocabulary()
        self.target_vocab = self.subword.target.vocabulary()
        self.max_seq_len_source = MAX_SOURCE
        self.default_options = DecodeOptions(beam_size=2)
        self._answers = {tuple(self.subword.source.encode_text(e)[0]): self.subword.target.encode_text(g)[0]
                         for e, g in zip(ENGLISH, GERMAN)}

    def translate_ids(self, sources, options=None):
        results = []
        for source in sources:
            target = list(self._answers.get(tuple(source[:MAX_SOURCE]), [4])) + [3]   # </s> at the end
            length = min(len(source), MAX_SOURCE)
            attention = np.zeros((len(target), length), dtype=np.float32)
            attention[np.arange(len(target)), np.minimum(np.arange(len(target)), length - 1)] = 1.0
            results.append(Translation(target, self.target_vocab.decode(target), 0.0, attention,
                                       len(source) > MAX_SOURCE))
        return results


@pytest.fixture(scope="module")
def client(prepared):
    return create_app(DirectProvider(CopyingTranslator(prepared)), ServingSettings()).test_client()


def post_json(client, instances, configuration=None):
    body = {"instances": [{"data": text} for text in instances]}
    if configuration:
        body["configuration"] = configuration
    return client.post("/invocations", json=body)


def test_raw_text_in_raw_text_out(client):
    response = post_json(client, ENGLISH)
    assert response.status_code == 200, response.get_data()
    targets = [p["target"] for p in response.get_json()["predictions"]]
    assert targets == GERMAN                     # punctuation attached, cased, nothing but the text
    assert not any(WORD_BOUNDARY in t for t in targets)


def test_jsonlines_answers_raw_text(client):
    body = "".join(json.dumps({"source": text}) + "\n" for text in ENGLISH[:3])
    response = client.post("/invocations", data=body, content_type="application/jsonlines")
    assert response.status_code == 200, response.get_data()
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [line["target"] for line in lines] == GERMAN[:3]


def test_attention_matrix_comes_with_the_pieces_of_its_rows_and_columns(client, prepared):
    response = post_json(client, ENGLISH[:2], {"attention_matrix": "true"})
    assert response.status_code == 200, response.get_data()
    models = find_subword_models(prepared)
    for english, prediction in zip(ENGLISH, response.get_json()["predictions"]):
        assert prediction["source_tokens"] == models.source.encode_text(english)[1]
        assert "".join(prediction["target_tokens"]).replace(WORD_BOUNDARY, " ").strip() == prediction["target"]
        matrix = np.array(prediction["matrix"])
        assert matrix.shape == (len(prediction["target_tokens"]), len(prediction["source_tokens"]))


@pytest.mark.parametrize("text, message", [("", "empty text"), ("   \t ", "empty text"),
                                           ("你好世界", "none of the text is known")])
def test_text_without_anything_to_translate_is_a_400_naming_the_instance(client, text, message):
    response = post_json(client, [ENGLISH[0], text])
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error.startswith("instances[1].data: ") and message in error
    response = client.post("/invocations", data=json.dumps({"source": text}) + "\n",
                           content_type="application/jsonlines")
    assert response.status_code == 400 and response.get_json()["error"].startswith("line 1.source: ")


def test_a_known_word_among_unknown_script_is_translated(client):
    response = post_json(client, ["你好 man"])
    assert response.status_code == 200, response.get_data()


def test_over_long_raw_text_is_truncated_and_reported(client):
    response = post_json(client, [ENGLISH[0], " ".join(ENGLISH * 4)], {"attention_matrix": "true"})
    assert response.status_code == 200, response.get_data()
    assert response.headers[TRUNCATED_HEADER] == "1"
    prediction = response.get_json()["predictions"][1]
    assert len(prediction["source_tokens"]) == MAX_SOURCE
    assert np.array(prediction["matrix"]).shape == (len(prediction["target_tokens"]), MAX_SOURCE)


def test_recordio_stays_ids(client, prepared):
    models = find_subword_models(prepared)
    ids = models.source.encode_text(ENGLISH[1])[0]
    body = recordio_codec.pairs_to_bytes([(ids, [])])
    response = client.post("/invocations", data=body, content_type="application/x-recordio-protobuf")
    assert response.status_code == 200
    (_, target), = recordio_codec.read_pairs_from_bytes(response.get_data(), require_target=False)
    assert models.target.decode(target) == GERMAN[1]
    response = client.post("/invocations", data=body, content_type="application/x-recordio-protobuf",
                           headers={"Accept": "application/json"})
    assert response.get_json()["predictions"][0]["target"] == GERMAN[1]


# ----- the real Translator on an untrained model directory with subword models -----

@pytest.fixture(scope="module")
def model_dir(prepared, tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    models = find_subword_models(prepared)
    config = save_untrained_model(str(directory), models.source.vocabulary(), models.target.vocabulary(), seed=0,
                                  max_seq_len_source=12, max_seq_len_target=16)
    models.save(directory)
    assert config.source_vocab_size == len(models.source)
    return directory


def test_translator_load_finds_the_subword_models_and_translates_raw_text(model_dir):
    translator = Translator.load(str(model_dir))
    assert translator.subword is not None
    results = translator.translate_text(ENGLISH[:2] + [""], DecodeOptions(beam_size=2, attention_matrix=True))
    for english, result in zip(ENGLISH[:2], results):
        assert isinstance(result.text, str) and WORD_BOUNDARY not in result.text
        assert result.source_tokens == translator.subword.source.encode_text(english)[1][:12]
        assert result.text == translator.subword.target.decode(result.target_ids)
    assert results[2].text == "" and results[2].target_ids == []


def test_endpoint_matrix_shape_is_target_tokens_by_source_tokens(model_dir):
    client = create_app(DirectProvider(Translator.load(str(model_dir))), ServingSettings()).test_client()
    response = post_json(client, ENGLISH, {"attention_matrix": "true", "beam_size": 3})
    assert response.status_code == 200, response.get_data()
    for prediction in response.get_json()["predictions"]:
        assert WORD_BOUNDARY not in prediction["target"]
        matrix = np.array(prediction["matrix"])
        assert matrix.shape == (len(prediction["target_tokens"]), len(prediction["source_tokens"]))
        assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-4)


def test_a_vocab_that_does_not_match_the_subword_model_fails_the_load(model_dir, tmp_path):
    import shutil
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    vocab = Vocabulary.load(str(broken / "vocab.trg.json")).token_to_id()
    swapped = {token: (5 if index == 6 else 6 if index == 5 else index) for token, index in vocab.items()}
    Vocabulary(swapped).save(str(broken / "vocab.trg.json"))
    with pytest.raises(Exception) as error:
        Translator.load(str(broken))
    assert "vocab.trg.json: id 5" in str(error.value) and "subword.trg.model" in str(error.value)


def test_translate_cli_reads_and_writes_raw_text(model_dir, capsys):
    stdout, stderr = io.StringIO(), io.StringIO()
    args = translate.parse_args(["--model", str(model_dir), "--beam-size", "2"])
    assert translate.run(args, io.StringIO("".join(e + "\n" for e in ENGLISH)), stdout, stderr) == 0
    lines = stdout.getvalue().split("\n")[:-1]
    assert len(lines) == len(ENGLISH) and not any(WORD_BOUNDARY in line for line in lines)
