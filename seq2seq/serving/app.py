"""The Flask app of the endpoint: /ping, /execution-parameters, /invocations, and the model page at / (a static
HTML page over /invocations; SEQ2SEQ_MODEL_PAGE=false turns it off: 404).

`create_app(provider, settings)` takes a translator provider (see seq2seq.serving.providers) so that
tests can serve a fake or an eagerly loaded translator, and the server a lazily loading, batching one.

Status codes: 200 success (never with an error inside), 400 malformed body / missing field / bad
configuration or broken chunked framing, 404/405 unknown route or method, 406 unacceptable Accept,
408 body that stopped arriving for SEQ2SEQ_BODY_TIMEOUT s, 413 body over
SAGEMAKER_MAX_PAYLOAD_IN_MB, 415 unknown Content-Type, 500 internal error (traceback only in the
log), 503 model not loaded, 504 decoding over SAGEMAKER_MODEL_SERVER_TIMEOUT. Errors are
`{"error": "<what and where>"}`.
"""
import json
import logging
import os
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import List

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from seq2seq import failure_text
from seq2seq.content_types import JSON
from seq2seq.errors import Seq2SeqError, UserError
from seq2seq.serving import formats
from seq2seq.serving.body_guard import UNREAD_KEY, BodyGuard
from seq2seq.serving.http_errors import (DecodeTimeoutError, ModelNotReadyError, bad_request, body_timeout,
                                         body_truncated, malformed_body, payload_too_large)
from seq2seq.serving.options import apply_overrides
from seq2seq.serving.settings import ServingSettings

logger = logging.getLogger(__name__)
TRUNCATED_HEADER = "X-Seq2Seq-Truncated-Instances"
# SageMaker's InvokeEndpoint passes only this response header on to the caller (as CustomAttributes).
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
CUSTOM_ATTRIBUTES_MAX_CHARS = 1024
READ_CHUNK_BYTES = 1 << 16
MODEL_PAGE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "page.html")


def create_app(provider, settings: ServingSettings = None) -> Flask:
    """A Flask app serving translations from `provider`; `settings` default to ServingSettings().

    Everything the app uses is held by the app (its closures and `app.extensions`), so apps built
    with different providers and settings live side by side in one process.
    """
    settings = settings or ServingSettings()
    app = Flask("seq2seq.serving")
    app.extensions["seq2seq_provider"] = provider
    app.extensions["seq2seq_settings"] = settings

    @app.before_request
    def _start_provider():
        start = getattr(provider, "start", None)
        if start is not None:
            start()  # lazy fallback when no post_fork hook started the load; idempotent

    @app.get("/ping")
    def ping():
        if provider.is_ready():
            return Response(status=200)
        try:
            provider.translator()
        except ModelNotReadyError as error:
            return _error_response(error.message, error.status)
        return Response(status=200)

    @app.get("/execution-parameters")
    def execution_parameters():
        return _json_response({
            "MaxConcurrentTransforms": settings.max_concurrent_transforms,
            "BatchStrategy": settings.batch_strategy,
            "MaxPayloadInMB": _payload_mb(settings.max_payload_mb),
        }, 200)

    @app.post("/invocations")
    def invocations():
        return _invoke(provider, settings)

    if settings.model_page:
        with open(MODEL_PAGE_FILE, "rb") as stream:
            page = stream.read()

        @app.get("/")
        def model_page():
            return Response(page, status=200, mimetype="text/html")

    _register_error_handlers(app, settings)
    app.wsgi_app = BodyGuard(app.wsgi_app, settings)  # answers stay readable when the body is not read
    return app


def _invoke(provider, settings: ServingSettings) -> Response:
    request_type = formats.request_format(request.headers.get("Content-Type"))
    response_type = formats.response_format(request.headers.get("Accept"), request_type)
    translator = provider.translator()
    body = _read_body(settings)
    subword = getattr(translator, "subword", None)  # raw text in and out with subword models
    try:
        instances = formats.parse_request(body, request_type, translator.source_vocab, subword)
    except RecursionError:  # json's decoder recurses once per nesting level
        raise bad_request(f"request body: {request_type} nested too deeply to parse") from None
    options = [apply_overrides(translator.default_options, instance.overrides) for instance in instances]
    translations = _translate(provider, instances, options, settings.timeout_s)
    payload = formats.render_response(translations, [o.attention_matrix for o in options], response_type,
                                      subword, instances)
    response = Response(payload, status=200, mimetype=response_type)
    truncated = [str(index) for index, translation in enumerate(translations) if translation.source_truncated]
    if truncated:
        _report_truncation(response, truncated)
        logger.info("truncated %d of %d sources to the model's max_seq_len_source", len(truncated), len(instances))
    return response


def _report_truncation(response: Response, truncated: List[str]) -> None:
    """Name the truncated instances (0-based) in our header and in SageMaker's custom attributes, which
    are limited to 1024 characters (the count alone when the list does not fit)."""
    listed = ",".join(truncated)
    response.headers[TRUNCATED_HEADER] = listed
    attribute = f"seq2seq-truncated-instances={listed}"
    if len(attribute) > CUSTOM_ATTRIBUTES_MAX_CHARS:
        attribute = f"seq2seq-truncated-count={len(truncated)}"
    response.headers[CUSTOM_ATTRIBUTES_HEADER] = attribute


def _read_body(settings: ServingSettings) -> bytes:
    """The request body; 413 once it exceeds SAGEMAKER_MAX_PAYLOAD_IN_MB, with or without Content-Length;
    408 when the client stops sending for SEQ2SEQ_BODY_TIMEOUT seconds; 400 for broken chunked framing.

    Read by hand because werkzeug's own limit silently truncates chunked bodies at the maximum. What is
    left unread is drained (or the connection closed) by BodyGuard after the answer.
    """
    limit = settings.max_payload_bytes
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise payload_too_large(request.content_length, settings.max_payload_mb)
    body = bytearray()
    try:
        while limit is None or len(body) <= limit:
            size = READ_CHUNK_BYTES if limit is None else min(READ_CHUNK_BYTES, limit + 1 - len(body))
            chunk = request.stream.read(size)
            if not chunk:
                break
            body += chunk
    except HTTPException:  # werkzeug's ClientDisconnected: the body ended before Content-Length
        request.environ[UNREAD_KEY] = True
        raise
    except Exception as error:
        request.environ[UNREAD_KEY] = True
        if type(error).__module__.startswith("gunicorn.http"):  # its chunked parser refused the framing
            raise malformed_body(len(body), error) from None
        if isinstance(error, OSError):  # socket timeout (SEQ2SEQ_BODY_TIMEOUT) or a dropped connection
            raise body_timeout(request.content_length, settings.body_timeout_s, error) from None
        raise
    if limit is not None and len(body) > limit:
        raise payload_too_large(request.content_length, settings.max_payload_mb)
    if request.content_length is not None and len(body) < request.content_length:
        request.environ[UNREAD_KEY] = True
        raise body_truncated(len(body), request.content_length)
    return bytes(body)


def _translate(provider, instances: List[formats.Instance], options: list, timeout_s: float) -> list:
    """Decode every instance, one provider call per distinct DecodeOptions; results in request order."""
    groups = {}
    for index, option in enumerate(options):
        groups.setdefault(option, []).append(index)
    pending = [(indices, provider.submit([instances[i].source_ids for i in indices], option))
               for option, indices in groups.items()]
    deadline = time.monotonic() + timeout_s
    results = [None] * len(instances)
    for indices, future in pending:
        try:
            translations = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            for _, other in pending:
                other.cancel()
            raise DecodeTimeoutError(f"decoding {len(instances)} instances did not finish within {timeout_s} s "
                                     f"(SAGEMAKER_MODEL_SERVER_TIMEOUT); send fewer or shorter sentences") from None
        for index, translation in zip(indices, translations):
            results[index] = translation
    return results


def _register_error_handlers(app: Flask, settings: ServingSettings) -> None:
    @app.errorhandler(Seq2SeqError)
    def _seq2seq_error(error: Seq2SeqError):
        if isinstance(error, UserError):
            logger.info("rejected request (%d): %s", error.status, error.message)
        else:
            logger.error("request failed (%d): %s", error.status, error.message)
        return _error_response(error.message, error.status)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        return _error_response(f"{error.name}: {error.description}", error.code or 500)

    @app.errorhandler(Exception)
    def _internal_error(error: Exception):
        logger.exception("internal error while handling %s %s", request.method, request.path)
        if failure_text.is_out_of_memory(error):  # one line that says what to change, never MXNet's trace
            return _error_response(failure_text.out_of_memory_advice(
                error, settings.device, "decoding", "send fewer or shorter sentences or a smaller beam_size, or "
                "lower SEQ2SEQ_MAX_BATCH_SENTENCES or the workers per GPU"), 500)
        return _error_response(f"internal error ({type(error).__name__}); the server log has the details", 500)


def _error_response(message: str, status: int) -> Response:
    return _json_response({"error": message}, status)


def _json_response(obj, status: int) -> Response:
    return Response(json.dumps(obj, ensure_ascii=False), status=status, mimetype=JSON)


def _payload_mb(value: float):
    return int(value) if float(value).is_integer() else value
