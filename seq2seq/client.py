"""A small client for the endpoint (a local `serve`, or anything speaking the same HTTP contract).

    from seq2seq import client
    client.translate(["ein Hund läuft ."], "http://127.0.0.1:8080")            # -> ["a dog runs ."]
    client.translate_jsonlines(sentences, url)                                  # batch-transform format
    client.translate_ids([[12, 40, 7]], url)                                    # RecordIO-protobuf, ids in and out

Errors come back as ServerError with the HTTP status and the server's message.
"""
import json
from typing import Dict, List, Optional, Sequence

import numpy as np
import requests

from seq2seq.content_types import JSON, JSONLINES, RECORDIO_PROTOBUF
from seq2seq.data import recordio_codec

DEFAULT_TIMEOUT_S = 60.0


class ServerError(Exception):
    """The endpoint answered with a non-200 status."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


def invocations_url(url: str) -> str:
    """`url` itself when it already ends in /invocations, else url + "/invocations"."""
    url = url.rstrip("/")
    return url if url.endswith("/invocations") else url + "/invocations"


def ping(url: str, timeout_s: float = 2.0, session: requests.Session = None) -> bool:
    """True when GET /ping answers 200 (the model is loaded)."""
    http = session or requests
    base = url.rstrip("/")
    base = base[: -len("/invocations")] if base.endswith("/invocations") else base
    try:
        return http.get(base + "/ping", timeout=timeout_s).status_code == 200
    except requests.RequestException:
        return False


def translate_predictions(texts: Sequence[str], url: str, configuration: Optional[Dict] = None,
                          timeout_s: float = DEFAULT_TIMEOUT_S, session: requests.Session = None) -> List[Dict]:
    """JSON request; returns the raw predictions ({"target": ..., "matrix"?: ...}) in order."""
    document = {"instances": [{"data": text} for text in texts]}
    if configuration:
        document["configuration"] = configuration
    body = _post(url, json.dumps(document, ensure_ascii=False).encode("utf-8"), JSON, JSON, timeout_s, session)
    return json.loads(body)["predictions"]


def translate(texts: Sequence[str], url: str, beam_size: int = None, attention_matrix: bool = False,
              length_penalty_alpha: float = None, length_penalty_beta: float = None,
              max_output_length: int = None, timeout_s: float = DEFAULT_TIMEOUT_S,
              session: requests.Session = None) -> List[str]:
    """Translate whitespace-tokenized sentences with a JSON request; returns the target strings.

    Options left as None use the model's defaults. With `attention_matrix` use translate_predictions
    to get the matrices as well.
    """
    configuration = {key: value for key, value in (
        ("beam_size", beam_size), ("length_penalty_alpha", length_penalty_alpha),
        ("length_penalty_beta", length_penalty_beta), ("max_output_length", max_output_length),
    ) if value is not None}
    if attention_matrix:
        configuration["attention_matrix"] = "true"
    predictions = translate_predictions(texts, url, configuration, timeout_s, session)
    return [prediction["target"] for prediction in predictions]


def translate_jsonlines(texts: Sequence[str], url: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                        session: requests.Session = None) -> List[str]:
    """Translate with the batch-transform format: {"source": ...} lines in, {"target": ...} lines out."""
    body = b"".join(json.dumps({"source": text}, ensure_ascii=False).encode("utf-8") + b"\n" for text in texts)
    answer = _post(url, body, JSONLINES, JSONLINES, timeout_s, session).decode("utf-8")
    return [json.loads(line)["target"] for line in answer.split("\n") if line.strip()]


def translate_ids(sources: Sequence[Sequence[int]], url: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                  session: requests.Session = None) -> List[np.ndarray]:
    """Translate source id sequences with RecordIO-protobuf; returns target id arrays (int32) in order."""
    body = recordio_codec.pairs_to_bytes((list(source), []) for source in sources)
    answer = _post(url, body, RECORDIO_PROTOBUF, RECORDIO_PROTOBUF, timeout_s, session)
    pairs = recordio_codec.read_pairs_from_bytes(answer, name="response body", require_target=False)
    return [target for _source, target in pairs]


def _post(url: str, body: bytes, content_type: str, accept: str, timeout_s: float, session) -> bytes:
    http = session or requests
    response = http.post(invocations_url(url), data=body, timeout=timeout_s,
                         headers={"Content-Type": content_type, "Accept": accept})
    if response.status_code != 200:
        raise ServerError(response.status_code, _error_message(response))
    return response.content


def _error_message(response: requests.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500]
