"""Status-bearing errors of the endpoint. The app turns any Seq2SeqError into `{"error": message}`
with the error's status; everything else becomes a 500 whose traceback goes only to the log."""
from seq2seq.errors import Seq2SeqError, UserError


class ModelNotReadyError(Seq2SeqError):
    """The worker's model is still loading, or failed to load (503)."""

    status = 503


class DecodeTimeoutError(Seq2SeqError):
    """Decoding did not finish within SAGEMAKER_MODEL_SERVER_TIMEOUT (504)."""

    status = 504


def bad_request(message: str) -> UserError:
    """Malformed body, missing field or bad configuration (400)."""
    return UserError(message, status=400)


def unsupported_media_type(content_type: str, supported) -> UserError:
    """Content-Type we cannot parse (415)."""
    return UserError(f"unsupported Content-Type {content_type!r}; use one of {', '.join(supported)}",
                     status=415)


def not_acceptable(accept: str, supported) -> UserError:
    """Accept header that allows none of our response types (406)."""
    return UserError(f"cannot produce any type allowed by Accept {accept!r}; we produce {', '.join(supported)}",
                     status=406)


def payload_too_large(size_bytes, limit_mb: float) -> UserError:
    """Request body above SAGEMAKER_MAX_PAYLOAD_IN_MB (413); `size_bytes` None when sent chunked."""
    size = "sent chunked" if size_bytes is None else f"{size_bytes} bytes"
    limit_bytes = int(limit_mb * 1024 * 1024)
    return UserError(f"request body ({size}) exceeds the limit of {limit_bytes} bytes "
                     f"(SAGEMAKER_MAX_PAYLOAD_IN_MB={limit_mb:g})", status=413)


def body_timeout(content_length, timeout_s: float, error: Exception) -> UserError:
    """The client stopped sending the body (408); the connection is closed after the answer."""
    expected = "the chunked body" if content_length is None else f"all {content_length} announced bytes"
    return UserError(f"request body incomplete: nothing more arrived for {timeout_s:g} s (SEQ2SEQ_BODY_TIMEOUT) "
                     f"before {expected} arrived ({type(error).__name__})", status=408)


def body_truncated(received: int, content_length: int) -> UserError:
    """The connection ended before Content-Length bytes arrived (400)."""
    return UserError(f"request body incomplete: the connection ended after {received} of the {content_length} "
                     f"bytes announced by Content-Length", status=400)


def malformed_body(received: int, error: Exception) -> UserError:
    """Transfer-Encoding: chunked framing that does not parse (400)."""
    return UserError(f"malformed chunked request body after {received} bytes: {type(error).__name__} "
                     f"{error}".rstrip(), status=400)
