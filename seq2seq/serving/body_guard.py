"""WSGI middleware that makes every answer readable, whatever happened to the request body.

Most HTTP clients (Python's urllib and requests, curl for small bodies) send the whole request body
before they read the answer. A server that answers early (413 from Content-Length, 415, 503) and
closes with unread bytes in its receive buffer makes the kernel reset the connection, and the client
sees "connection reset by peer" instead of the answer. So, around the Flask app:

* while the app runs, the client socket (gunicorn's, when there is one) gets a read timeout of
  SEQ2SEQ_BODY_TIMEOUT seconds, so that a body that stops half way ends in a 408, never in a
  request thread blocked for ever; the socket's own timeout is restored afterwards;
* after the app has answered, whatever it left of the body is read and discarded, up to
  SEQ2SEQ_DRAIN_LIMIT_MB (a Content-Length beyond that bound is not read at all); then the
  connection stays usable for the next request;
* when the body could not be drained (too large, stalled, malformed chunking), gunicorn is told to
  close the connection after the answer, so it never parses the rest of a body as a new request.
"""
import logging
import socket
import time

logger = logging.getLogger(__name__)
DRAIN_CHUNK_BYTES = 1 << 16
UNREAD_KEY = "seq2seq.body_unreadable"  # set by the app when it gave up on the body (timeout, bad chunking)


class BodyGuard:
    """Wraps a WSGI callable; `settings` is a ServingSettings."""

    def __init__(self, wsgi_app, settings):
        self.wsgi_app = wsgi_app
        self.settings = settings

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        previous_timeout = _set_timeout(sock, self.settings.body_timeout_s)
        try:
            result = self.wsgi_app(environ, start_response)
            if not self._drain(environ):
                _force_close(start_response)
            return result
        finally:
            if sock is not None:
                _set_timeout(sock, previous_timeout)

    def _drain(self, environ) -> bool:
        """Read and discard the rest of the body; True when the connection can be reused."""
        if environ.get(UNREAD_KEY):
            return False
        stream = environ.get("wsgi.input")
        if stream is None:
            return True
        limit = self.settings.drain_limit_bytes
        length = _content_length(environ)
        if length is not None and length > limit:
            logger.info("request body of %d bytes left unread (over SEQ2SEQ_DRAIN_LIMIT_MB=%g); closing the "
                        "connection after the answer", length, self.settings.drain_limit_mb)
            return False
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length is None and not chunked and not environ.get("wsgi.input_terminated"):
            return True  # no body
        started, drained = time.monotonic(), 0
        try:
            while drained <= limit:
                chunk = stream.read(min(DRAIN_CHUNK_BYTES, limit + 1 - drained))
                if not chunk:
                    if drained:
                        logger.info("discarded %d unread request body bytes in %.2f s", drained,
                                    time.monotonic() - started)
                    return True
                drained += len(chunk)
        except Exception as error:  # a stalled or broken body: nothing more to read, close after answering
            logger.info("request body could not be drained after %d bytes (%s: %s); closing the connection",
                        drained, type(error).__name__, error)
            return False
        logger.info("request body left undrained after %d bytes (SEQ2SEQ_DRAIN_LIMIT_MB=%g); closing the "
                    "connection after the answer", drained, self.settings.drain_limit_mb)
        return False


def _content_length(environ):
    try:
        value = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return value if value >= 0 else None


def _set_timeout(sock, timeout):
    """Set `sock`'s timeout; returns the previous one (None: blocking)."""
    if sock is None:
        return None
    try:
        previous = sock.gettimeout()
        sock.settimeout(timeout)
        return previous
    except (OSError, AttributeError, socket.error):
        return None


def _force_close(start_response) -> None:
    """Ask gunicorn to close the connection after this answer (its start_response is a Response method)."""
    response = getattr(start_response, "__self__", None)
    force_close = getattr(response, "force_close", None)
    if force_close is not None:
        force_close()
