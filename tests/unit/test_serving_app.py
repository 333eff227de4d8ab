"""Flask test-client tests of /ping, /execution-parameters and /invocations: every format and status."""
import io
import json
import threading

import numpy as np
import pytest

from seq2seq.data import recordio_codec
from seq2seq.errors import UserError
from seq2seq.serving.app import CUSTOM_ATTRIBUTES_HEADER, TRUNCATED_HEADER, create_app
from seq2seq.serving.batching import BatchingProvider
from seq2seq.serving.providers import DirectProvider
from seq2seq.serving.settings import ServingSettings
from serving_fakes import ReversingTranslator

JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO = "application/x-recordio-protobuf"


@pytest.fixture
def translator():
    return ReversingTranslator(max_seq_len_source=6)


@pytest.fixture
def client(translator):
    return create_app(DirectProvider(translator), ServingSettings(max_payload_mb=0.01)).test_client()


def post(client, body, content_type=JSON, accept=None):
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode("utf-8")
    return client.post("/invocations", data=body, headers=headers)


def error_of(response) -> str:
    assert response.mimetype == JSON
    return response.get_json()["error"]


# --- 200: formats --------------------------------------------------------------------------------

def test_json_request_returns_predictions_in_order(client):
    response = post(client, {"instances": [{"data": "ein hund läuft"}, {"data": "a dog"}]})
    assert response.status_code == 200
    assert response.mimetype == JSON
    assert response.get_json() == {"predictions": [{"target": "läuft hund ein"}, {"target": "dog a"}]}
    assert TRUNCATED_HEADER not in response.headers


def test_json_attention_matrix_string_true_adds_rows_per_target_token(client):
    response = post(client, {"instances": [{"data": "ein hund läuft"}], "configuration": {"attention_matrix": "true"}})
    prediction = response.get_json()["predictions"][0]
    matrix = np.array(prediction["matrix"])
    assert matrix.shape == (len(prediction["target"].split()), 3)
    np.testing.assert_array_equal(matrix, [[0, 0, 1], [0, 1, 0], [1, 0, 0]])


def test_json_configuration_options_reach_the_translator(client, translator):
    body = {"instances": [{"data": "ein hund läuft im"}],
            "configuration": {"beam_size": "1", "max_output_length": 2, "length_penalty_alpha": 0.5,
                              "length_penalty_beta": "0.2", "attention_matrix": False}}
    response = post(client, body)
    assert response.get_json() == {"predictions": [{"target": "ein hund"}]}
    options = translator.calls[-1][1]
    assert (options.beam_size, options.max_output_length) == (1, 2)
    assert (options.length_penalty_alpha, options.length_penalty_beta, options.attention_matrix) == (0.5, 0.2, False)


def test_search_options_of_a_request_reach_the_translator_and_bad_ones_are_400(client, translator):
    body = {"instances": [{"data": "ein hund"}],
            "configuration": {"shortlist": "false", "block_ngram_repeat": 3, "coverage_penalty": "0.4"}}
    assert post(client, body).status_code == 200
    options = translator.calls[-1][1]
    assert (options.shortlist, options.block_ngram_repeat, options.coverage_penalty) == (False, 3, 0.4)
    for key, value in (("block_ngram_repeat", -1), ("coverage_penalty", 11), ("shortlist", "maybe")):
        response = post(client, {"instances": [{"data": "ein hund"}], "configuration": {key: value}})
        assert response.status_code == 400
        assert f"configuration.{key}" in response.get_json()["error"]


def test_per_instance_configuration_overrides_the_shared_one(client, translator):
    body = {"instances": [{"data": "ein hund"}, {"data": "ein hund", "configuration": {"beam_size": 1}},
                          {"data": "a dog"}],
            "configuration": {"beam_size": 3}}
    response = post(client, body)
    assert [p["target"] for p in response.get_json()["predictions"]] == ["hund ein", "ein hund", "dog a"]
    assert sorted(call[0] for call in translator.calls) == [1, 2]


def test_jsonlines_keeps_line_order_and_skips_blank_lines(client):
    body = '{"source": "ein hund"}\r\n\n{"source": "a dog runs"}\n{"source": ""}\n'.encode()
    response = post(client, body, JSONLINES)
    assert response.status_code == 200
    assert response.mimetype == JSONLINES
    lines = response.get_data(as_text=True).split("\n")
    assert [json.loads(line) for line in lines if line] == [{"target": "hund ein"}, {"target": "runs dog a"},
                                                             {"target": ""}]
    assert response.get_data(as_text=True).endswith("\n")


def test_recordio_protobuf_round_trip_through_the_codec(client, translator):
    sources = [translator.source_vocab.encode("ein hund läuft".split()), [], translator.source_vocab.encode(["a"])]
    body = recordio_codec.pairs_to_bytes((source, []) for source in sources)
    response = post(client, body, RECORDIO)
    assert response.status_code == 200
    assert response.mimetype == RECORDIO
    targets = [target.tolist() for _, target in
               recordio_codec.read_pairs_from_bytes(response.get_data(), require_target=False)]
    assert targets == [list(reversed(sources[0])), [], sources[2]]


@pytest.mark.parametrize("content_type, body", [
    (JSON, b'{"instances": [{"data": "ein hund"}]}'),
    (JSONLINES, b'{"source": "ein hund"}\n'),
])
@pytest.mark.parametrize("accept, expected", [
    (None, None), ("*/*", None), (JSON, JSON), (JSONLINES, JSONLINES), ("application/*", None),
    ("text/html;q=0.9, application/jsonlines;q=0.5", JSONLINES),
])
def test_accept_is_honoured_and_defaults_to_the_content_type(client, content_type, body, accept, expected):
    response = post(client, body, content_type, accept)
    assert response.status_code == 200
    expected = expected or content_type
    assert response.mimetype == expected
    text = response.get_data(as_text=True)
    targets = (json.loads(text)["predictions"] if expected == JSON
               else [json.loads(line) for line in text.splitlines()])
    assert targets == [{"target": "hund ein"}]


def test_json_request_answered_as_recordio_with_documented_accept_typo(client, translator):
    response = post(client, {"instances": [{"data": "a dog"}]}, JSON, "applications/x-recordio-protobuf")
    assert response.mimetype == RECORDIO
    (_, target), = recordio_codec.read_pairs_from_bytes(response.get_data(), require_target=False)
    assert translator.target_vocab.decode(target) == ["dog", "a"]


def test_content_type_parameters_and_missing_content_type_default_to_json(client):
    response = client.post("/invocations", data=b'{"instances": [{"data": "a"}]}',
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.get_json() == {"predictions": [{"target": "a"}]}
    response = client.post("/invocations", data=b'{"instances": [{"data": "dog a"}]}')
    assert response.get_json() == {"predictions": [{"target": "a dog"}]}


@pytest.mark.parametrize("content_type, body, expected", [
    (JSON, b"", b'{"predictions":[]}'),
    (JSON, b'{"instances": []}', b'{"predictions":[]}'),
    (JSONLINES, b"", b""),
    (JSONLINES, b"\n\n", b""),
    (RECORDIO, b"", b""),
])
def test_empty_input_gives_empty_output(client, translator, content_type, body, expected):
    response = post(client, body, content_type)
    assert response.status_code == 200
    assert response.get_data() == expected
    assert translator.calls == []


def test_long_source_is_truncated_and_reported_in_a_header(client):
    long = " ".join(["ein", "hund"] * 5)
    response = post(client, {"instances": [{"data": "a"}, {"data": long}, {"data": "dog"}, {"data": long}]})
    assert response.status_code == 200
    assert response.headers[TRUNCATED_HEADER] == "1,3"
    assert response.headers[CUSTOM_ATTRIBUTES_HEADER] == "seq2seq-truncated-instances=1,3"
    assert response.get_json()["predictions"][1]["target"] == "hund ein hund ein hund ein"


def test_many_truncations_fit_sagemakers_custom_attributes_limit(translator):
    client = create_app(DirectProvider(translator), ServingSettings()).test_client()
    long = " ".join(["ein"] * 8)
    response = post(client, {"instances": [{"data": long}] * 400})
    assert response.headers[TRUNCATED_HEADER] == ",".join(str(i) for i in range(400))
    assert response.headers[CUSTOM_ATTRIBUTES_HEADER] == "seq2seq-truncated-count=400"


def test_utf8_byte_order_mark_is_accepted(client):
    response = post(client, "\ufeff".encode() + b'{"instances": [{"data": "a dog"}]}')
    assert response.get_json() == {"predictions": [{"target": "dog a"}]}


def test_unknown_tokens_become_unk(client):
    response = post(client, {"instances": [{"data": "ein Katze"}]})
    assert response.get_json() == {"predictions": [{"target": "<unk> ein"}]}


# --- 4xx ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, where", [
    (b'{"instances": [{"data": "a"}', "invalid JSON"),
    (b"[1, 2]", "expected an object"),
    (b'{"inputs": []}', 'missing field "instances"'),
    (b'{"instances": {"data": "a"}}', "instances: expected a list"),
    (b'{"instances": [{"data": "a"}, "b"]}', "instances[1]: expected an object"),
    (b'{"instances": [{"data": "a"}, {"text": "b"}]}', 'instances[1]: missing field "data"'),
    (b'{"instances": [{"data": 5}]}', "instances[0].data: expected a string"),
    (b'{"instances": [], "configuration": {"beam_size": 0}}', "configuration.beam_size: 0 is outside"),
    (b'{"instances": [], "configuration": {"beam_size": "wide"}}', "configuration.beam_size: expected an integer"),
    (b'{"instances": [], "configuration": {"attention_matrix": "yes"}}', "configuration.attention_matrix"),
    (b'{"instances": [], "configuration": {"length_penalty_alpha": "nan"}}', "length_penalty_alpha"),
    (b'{"instances": [], "configuration": {"max_output_length": 100000}}', "max_output_length"),
    (b'{"instances": [], "configuration": {"beam": 5}}', "unknown option 'beam'"),
    (b'{"instances": [], "configuration": "fast"}', "configuration: expected an object"),
    (b'{"instances": [{"data": "a", "configuration": {"beam_size": -1}}]}', "instances[0].configuration.beam_size"),
    (b'\xff{"instances": []}', "not valid UTF-8 at byte offset 0"),
])
def test_malformed_json_requests_are_400_naming_where(client, translator, body, where):
    response = post(client, body)
    assert response.status_code == 400
    assert where in error_of(response)
    assert translator.calls == []


@pytest.mark.parametrize("body, where", [
    (b'{"source": "a"}\n{"source": "b"\n', "line 2: invalid JSON"),
    (b'{"source": "a"}\n\n["b"]\n', "line 3: expected an object"),
    (b'{"source": "a"}\n{"data": "b"}\n', 'line 2: missing field "source"'),
    (b'{"source": null}\n', "line 1.source: expected a string"),
])
def test_malformed_jsonlines_are_400_naming_the_line(client, body, where):
    response = post(client, body, JSONLINES)
    assert response.status_code == 400
    assert where in error_of(response)


def test_corrupt_recordio_is_400_with_record_and_byte_offset(client, translator):
    good = recordio_codec.pairs_to_bytes([([4, 5], []), ([6], [])])
    response = post(client, good + b"\x00\x01\x02\x03garbage!", RECORDIO)
    assert response.status_code == 400
    message = error_of(response)
    assert "request body" in message and "record 2" in message and f"byte offset {len(good)}" in message


def test_recordio_source_id_outside_the_vocabulary_is_400(client, translator):
    size = len(translator.source_vocab)
    response = post(client, recordio_codec.pairs_to_bytes([([4], []), ([4, size + 7], [])]), RECORDIO)
    assert response.status_code == 400
    assert f"record 1: source id {size + 7} is outside the source vocabulary [0, {size})" in error_of(response)


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-npy", "text/plain; charset=utf-8"])
def test_unknown_content_type_is_415(client, content_type):
    response = post(client, b"a,b", content_type)
    assert response.status_code == 415
    assert content_type in error_of(response)


@pytest.mark.parametrize("accept", ["text/csv", "application/xml, text/html", "application/json;q=0"])
def test_unacceptable_accept_is_406(client, accept):
    response = post(client, {"instances": [{"data": "a"}]}, JSON, accept)
    assert response.status_code == 406
    assert "Accept" in error_of(response)


def test_body_over_the_payload_limit_is_413(client):
    body = json.dumps({"instances": [{"data": "ein " * 4000}]}).encode()
    response = post(client, body)
    assert response.status_code == 413
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB=0.01" in error_of(response)


def test_chunked_body_over_the_payload_limit_is_413(client):
    body = b'{"source": "ein hund"}\n' * 1000
    response = client.post("/invocations", input_stream=io.BytesIO(body),
                           headers={"Content-Type": JSONLINES, "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert "exceeds the limit" in error_of(response)


def test_unknown_route_and_wrong_method_are_json_errors(client):
    assert client.get("/predict").status_code == 404
    assert "Not Found" in error_of(client.get("/predict"))
    response = client.get("/invocations")
    assert response.status_code == 405
    assert "Method Not Allowed" in error_of(response)


# --- 5xx ----------------------------------------------------------------------------------------

def test_internal_error_is_500_without_traceback(client, caplog):
    response = post(client, {"instances": [{"data": "a"}, {"data": "boom"}]})
    assert response.status_code == 500
    message = error_of(response)
    assert "RuntimeError" in message and "Traceback" not in message and "exploded" not in message
    assert any("Traceback" in (record.exc_text or "") or record.exc_info for record in caplog.records)


def test_user_error_raised_by_the_translator_keeps_its_status():
    class Refusing(ReversingTranslator):
        def translate_ids(self, sources, options=None):
            raise UserError("source too odd", status=422)

    app = create_app(DirectProvider(Refusing()), ServingSettings())
    response = app.test_client().post("/invocations", json={"instances": [{"data": "a"}]})
    assert response.status_code == 422
    assert response.get_json() == {"error": "source too odd"}


def test_slow_decode_is_504_after_the_server_timeout():
    provider = BatchingProvider(lambda: ReversingTranslator(delay_s=1.5), batch_wait_ms=0)
    provider.start()
    assert provider.wait_until_ready(5)
    client = create_app(provider, ServingSettings(timeout_s=1)).test_client()
    response = client.post("/invocations", json={"instances": [{"data": "a"}]})
    assert response.status_code == 504
    assert "within 1 s" in error_of(response)


# --- /ping and /execution-parameters ------------------------------------------------------------

def test_ping_is_503_while_loading_then_200():
    release = threading.Event()

    def slow_load():
        release.wait(5)
        return ReversingTranslator()

    provider = BatchingProvider(slow_load, batch_wait_ms=0)
    client = create_app(provider, ServingSettings()).test_client()
    response = client.get("/ping")
    assert response.status_code == 503
    assert "still loading" in error_of(response)
    assert provider.started
    response = post(client, {"instances": [{"data": "a"}]})
    assert response.status_code == 503
    release.set()
    assert provider.wait_until_ready(5)
    response = client.get("/ping")
    assert response.status_code == 200 and response.get_data() == b""
    assert post(client, {"instances": [{"data": "a dog"}]}).get_json() == {"predictions": [{"target": "dog a"}]}


def test_ping_reports_a_failed_load_as_503():
    def broken_load():
        raise UserError("/opt/ml/model/config.json: no model config")

    provider = BatchingProvider(broken_load)
    provider.start()
    provider.wait_until_ready(5)
    client = create_app(provider, ServingSettings()).test_client()
    response = client.get("/ping")
    assert response.status_code == 503
    assert "failed to load: /opt/ml/model/config.json: no model config" in error_of(response)
    assert post(client, {"instances": []}).status_code == 503


def test_execution_parameters():
    settings = ServingSettings(max_payload_mb=6.0, max_concurrent_transforms=4, batch_strategy="MULTI_RECORD")
    client = create_app(DirectProvider(ReversingTranslator()), settings).test_client()
    response = client.get("/execution-parameters")
    assert response.status_code == 200
    assert response.get_json() == {"MaxConcurrentTransforms": 4, "BatchStrategy": "MULTI_RECORD",
                                   "MaxPayloadInMB": 6}
