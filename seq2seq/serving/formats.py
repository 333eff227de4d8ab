"""Request parsing and response rendering for the three content types of `POST /invocations`
(seq2seq.content_types; other spellings of them are accepted too).

    application/json               {"instances": [{"data": "tok tok"}], "configuration": {...}}
                                   → {"predictions": [{"target": "tok tok", "matrix"?: [[...]]}]}
    application/jsonlines          {"source": "tok tok"} per line → {"target": "tok tok"} per line
    application/x-recordio-protobuf  records with features["source"] ids → records with features["target"] ids

Any request type can be answered in any response type (chosen by Accept). Every parse error is a
400 that says where: instance index, line number, or record index and byte offset.

With subword models (a model directory with subword.src.model and subword.trg.model), `data` and `source`
are raw text and `target` is detokenised text; with the attention matrix a prediction also has
`source_tokens` and `target_tokens`, the pieces its columns and rows stand for. Raw text that is empty or
whitespace only, or that the source model knows none of (another script), is a 400 naming the instance.
RecordIO-protobuf always carries ids.
"""
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID
from seq2seq.content_types import ALIASES, JSON, RECORDIO_PROTOBUF, SERVED, canonical
from seq2seq.data import recordio_codec
from seq2seq.serving.http_errors import bad_request, not_acceptable, unsupported_media_type
from seq2seq.serving.options import parse_configuration

MATRIX_DECIMALS = 6
_SKIPPED_IDS = (PAD_ID, BOS_ID, EOS_ID)


@dataclass(frozen=True)
class Instance:
    """One sentence of a request: source ids and its option overrides (DecodeOptions field → value)."""

    source_ids: List[int]
    overrides: Dict[str, Any] = field(default_factory=dict)
    source_tokens: Optional[List[str]] = None    # subword pieces of raw-text input


def request_format(content_type: Optional[str]) -> str:
    """Canonical request type from a Content-Type header (parameters ignored); missing → JSON; else 415."""
    if content_type is None or not content_type.strip():
        return JSON
    request_type = canonical(content_type)
    if request_type is None:
        raise unsupported_media_type(content_type, SERVED)
    return request_type


def response_format(accept: Optional[str], request_type: str) -> str:
    """Canonical response type for an Accept header; missing or */* → the request's type; else 406."""
    if accept is None or not accept.strip():
        return request_type
    candidates = [request_type] + [alias for alias, canon in ALIASES.items() if canon == request_type]
    candidates += [alias for alias in ALIASES if alias not in candidates]
    match = parse_accept_header(accept, MIMEAccept).best_match(candidates)
    if match is None:
        raise not_acceptable(accept, SERVED)
    return ALIASES[match]


def parse_request(body: bytes, request_type: str, source_vocab, subword=None) -> List[Instance]:
    """Instances of a request body; an empty body gives no instances. Raises 400 errors that say where.

    `subword` (SubwordModels or None): text is raw and cut into the source model's pieces.
    """
    if not body.strip():
        return []
    if request_type == RECORDIO_PROTOBUF:
        return _parse_recordio(body, len(source_vocab))
    text = _decode_utf8(body)
    if request_type == JSON:
        return _parse_json(text, source_vocab, subword)
    return _parse_jsonlines(text, source_vocab, subword)


def render_response(translations: Sequence, with_matrix: Sequence[bool], response_type: str, subword=None,
                    instances: Sequence[Instance] = None) -> bytes:
    """Response body for `translations` (in request order); `with_matrix[i]` adds instance i's attention.

    With `subword`, targets are detokenised and matrices come with the pieces of `instances[i]`.
    """
    if response_type == RECORDIO_PROTOBUF:
        return recordio_codec.pairs_to_bytes(([], t.target_ids) for t in translations)
    sources = [_source_pieces(instance, subword) for instance in instances] if instances else [None] * len(translations)
    predictions = [_prediction(t, want, subword, source) for t, want, source in zip(translations, with_matrix, sources)]
    if response_type == JSON:
        return _dump_json({"predictions": predictions})
    return b"".join(_dump_json(p) + b"\n" for p in predictions)


def _prediction(translation, with_matrix: bool, subword=None, source_tokens=None) -> dict:
    if subword is None:
        prediction = {"target": " ".join(translation.target_tokens)}
    else:
        prediction = {"target": subword.target.decode(translation.target_ids)}
    if with_matrix:
        matrix = _token_attention(translation)
        prediction["matrix"] = np.round(matrix, MATRIX_DECIMALS).tolist()
        if subword is not None:
            prediction["source_tokens"] = list((source_tokens or [])[:matrix.shape[1]])
            prediction["target_tokens"] = list(translation.target_tokens)
    return prediction


def _source_pieces(instance: Instance, subword) -> Optional[List[str]]:
    """The source pieces of an instance (of its ids when it came as RecordIO); None for word-level models."""
    if subword is None:
        return None
    if instance.source_tokens is not None:
        return instance.source_tokens
    pieces = subword.source.pieces
    return [pieces[i] for i in instance.source_ids]


def _token_attention(translation) -> np.ndarray:
    """Attention rows of the output tokens only, (len(target_tokens), source_len): rows of ids the
    vocabulary leaves out of the text (<pad>, <s>, </s>) are dropped so that rows match `target`."""
    tokens = len(translation.target_tokens)
    if translation.attention is None:
        return np.zeros((tokens, 0))
    attention = np.asarray(translation.attention, dtype=np.float64)
    if attention.shape[0] != tokens and attention.shape[0] == len(translation.target_ids):
        keep = [token_id not in _SKIPPED_IDS for token_id in translation.target_ids]
        if sum(keep) == tokens:
            attention = attention[np.array(keep, dtype=bool)]
    return attention


def _dump_json(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _decode_utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")  # a leading byte-order mark is dropped
    except UnicodeDecodeError as error:
        raise bad_request(f"request body is not valid UTF-8 at byte offset {error.start}") from None


def _load_json(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise bad_request(f"{where}: invalid JSON: {error.msg} at line {error.lineno} column {error.colno} "
                          f"(character {error.pos})") from None


def _source_ids(text: Any, source_vocab, where: str) -> List[int]:
    if not isinstance(text, str):
        raise bad_request(f"{where}: expected a string of space-separated tokens, got {type(text).__name__}")
    return source_vocab.encode(text.split())


def _source(text: Any, source_vocab, subword, where: str, overrides=None) -> Instance:
    """The Instance of one sentence: word ids, or for subword models the pieces of raw text (checked)."""
    overrides = overrides or {}
    if subword is None:
        return Instance(_source_ids(text, source_vocab, where), overrides)
    if not isinstance(text, str):
        raise bad_request(f"{where}: expected a string of text, got {type(text).__name__}")
    if not text.strip():
        raise bad_request(f"{where}: empty text; there is nothing to translate")
    ids, pieces = subword.source.encode_text(text)
    if not subword.source.has_known_content(ids):
        raise bad_request(f"{where}: none of the text is known to the model's source vocabulary (every piece is "
                          "<unk>); is it in the language and script the model was trained on?")
    return Instance(ids, overrides, pieces)


def _parse_json(text: str, source_vocab, subword=None) -> List[Instance]:
    document = _load_json(text, "request body")
    if not isinstance(document, dict):
        raise bad_request(f"request body: expected an object with \"instances\", got {type(document).__name__}")
    if "instances" not in document:
        raise bad_request("request body: missing field \"instances\" (a list of {\"data\": \"...\"} objects)")
    instances = document["instances"]
    if not isinstance(instances, list):
        raise bad_request(f"instances: expected a list, got {type(instances).__name__}")
    shared = parse_configuration(document.get("configuration"), "configuration")
    parsed = []
    for index, instance in enumerate(instances):
        where = f"instances[{index}]"
        if not isinstance(instance, dict):
            raise bad_request(f"{where}: expected an object with \"data\", got {type(instance).__name__}")
        if "data" not in instance:
            raise bad_request(f"{where}: missing field \"data\"")
        own = parse_configuration(instance.get("configuration"), f"{where}.configuration")
        parsed.append(_source(instance["data"], source_vocab, subword, f"{where}.data", {**shared, **own}))
    return parsed


def _parse_jsonlines(text: str, source_vocab, subword=None) -> List[Instance]:
    parsed = []
    # Split on "\n" only: str.splitlines would also split at U+2028 etc., which JSON strings may contain.
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"line {line_number}"
        record = _load_json(line, where)
        if not isinstance(record, dict):
            raise bad_request(f"{where}: expected an object with \"source\", got {type(record).__name__}")
        if "source" not in record:
            raise bad_request(f"{where}: missing field \"source\"")
        parsed.append(_source(record["source"], source_vocab, subword, f"{where}.source"))
    return parsed


def _parse_recordio(body: bytes, vocab_size: int) -> List[Instance]:
    parsed = []
    pairs = recordio_codec.read_pairs_from_bytes(body, name="request body", require_target=False)
    for index, (source, _target) in enumerate(pairs):
        source = np.asarray(source)
        if source.size and (source.min() < 0 or source.max() >= vocab_size):
            bad = int(source.min()) if source.min() < 0 else int(source.max())
            raise bad_request(f"request body, record {index}: source id {bad} is outside the source "
                              f"vocabulary [0, {vocab_size})")
        parsed.append(Instance([int(i) for i in source]))
    return parsed
