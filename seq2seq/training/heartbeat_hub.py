"""The master side of the peer watchdog: a TCP hub that every training process connects to.

The hub tracks one connection per host. It broadcasts `abort` when a host's connection drops
before `done`, when a host is silent for `peer_timeout` seconds, when a host reports `fail`, and
when a host has not connected `startup_timeout` seconds after the hub started, and when the hosts
finish after different numbers of updates. It answers
`gather` with `gathered` once every host contributed, and sends `release` once every host is done.
See `seq2seq.training.peer_watchdog` for the worker side and the message list.
"""

import json
import logging
import socket
import threading
import time
from typing import Optional, Sequence

logger = logging.getLogger(__name__)


def send_message(sock: socket.socket, lock: threading.Lock, message: dict) -> bool:
    """Send one JSON line; returns False when the connection is gone."""
    data = (json.dumps(message) + "\n").encode("utf-8")
    with lock:
        try:
            sock.sendall(data)
            return True
        except OSError:
            return False


class LineReader:
    """Reads JSON lines from a socket. `read()` returns a dict, or None at end of stream.

    Raises TimeoutError when the socket's timeout passes without a complete line, and
    ValueError on a line that is not a JSON object.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def read(self) -> Optional[dict]:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message = json.loads(line.decode("utf-8"))
        if not isinstance(message, dict):
            raise ValueError(f"watchdog message is not a JSON object: {line[:80]!r}")
        return message


class _Peer:
    """One connected host: its socket, a send lock, and whether it finished cleanly."""

    def __init__(self, host: str, sock: socket.socket):
        self.host = host
        self.sock = sock
        self.lock = threading.Lock()
        self.done = False
        self.update = None
        self.closed = False


class HeartbeatHub:
    """Listens on `port` (all interfaces) for the hosts in `hosts`. Times are in seconds."""

    def __init__(self, hosts: Sequence[str], port: int, peer_timeout: float,
                 startup_timeout: float, heartbeat_interval: float):
        self.hosts = list(hosts)
        self.port = int(port)
        self.peer_timeout = peer_timeout
        self.startup_timeout = startup_timeout
        self.interval = heartbeat_interval
        self._peers = {}
        self._failed = {}
        self._gathers = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listener = None
        self._started_at = None

    def start(self) -> None:
        """Bind and start the accept and monitor threads. Raises OSError if the port is taken."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("", self.port))
        listener.listen(len(self.hosts) + 4)
        self._listener = listener
        self._started_at = time.monotonic()
        threading.Thread(target=self._accept_loop, name="hub-accept", daemon=True).start()
        threading.Thread(target=self._monitor_loop, name="hub-monitor", daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(self.peer_timeout)
            threading.Thread(target=self._serve, args=(conn,), name="hub-peer", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = LineReader(conn)
        try:
            hello = reader.read()
        except (OSError, ValueError):
            hello = None
        peer = self._register(conn, hello)
        if peer is None:
            conn.close()
            return
        while not self._stopped.is_set():
            try:
                message = reader.read()
            except TimeoutError:
                self._fail(peer.host, "silent", self.peer_timeout)
                break
            except (OSError, ValueError):
                message = None
            if message is None:
                if not peer.done and not self._stopped.is_set():
                    self._fail(peer.host, "lost")
                break
            self._handle(peer, message)
        with self._lock:
            peer.closed = True
        conn.close()

    def _register(self, conn: socket.socket, hello: Optional[dict]) -> Optional[_Peer]:
        if not hello or hello.get("type") != "hello":
            logger.warning("watchdog hub: a connection did not start with hello; closed")
            return None
        host = hello.get("host")
        with self._lock:
            if host not in self.hosts or host in self._peers:
                logger.warning("watchdog hub: unexpected or duplicate host %r; closed", host)
                return None
            peer = _Peer(host, conn)
            self._peers[host] = peer
            earlier = list(self._failed.items())
            finished = [(p.host, p.update) for p in self._peers.values() if p.done]
        for finished_host, update in finished:  # news from before this host registered
            send_message(conn, peer.lock, {"type": "finished", "host": finished_host,
                                           "update": update})
        for failed_host, (kind, detail) in earlier:
            send_message(conn, peer.lock, {"type": "abort", "host": failed_host, "kind": kind,
                                           "detail": detail})
        return peer

    def _handle(self, peer: _Peer, message: dict) -> None:
        kind = message.get("type")
        if kind == "done":
            self._done(peer, message.get("update"))
        elif kind == "fail":
            self._fail(peer.host, "failed", str(message.get("reason", "no reason given")))
        elif kind == "gather":
            self._gather(peer.host, message.get("seq"), message.get("value"))

    def _done(self, peer: _Peer, update) -> None:
        """A host finished after `update`: tell the others (a host still stepping beyond it has
        diverged and would hang in dist_sync), and release everyone once all agree."""
        with self._lock:
            peer.done = True
            peer.update = update
            peers = list(self._peers.values())
            everyone = (not self._failed and len(peers) == len(self.hosts)
                        and all(p.done for p in peers))
        self._broadcast({"type": "finished", "host": peer.host, "update": update}, skip=peer.host)
        if not everyone:
            return
        updates = {p.host: p.update for p in peers}
        if len(set(updates.values())) > 1:
            detail = ", ".join(f"{h} after update {updates[h]}" for h in self.hosts)
            self._fail(peer.host, "diverged", detail, tell_the_host=True)
        else:
            self._broadcast({"type": "release"})

    def _gather(self, host: str, seq, value) -> None:
        with self._lock:
            values = self._gathers.setdefault(seq, {})
            values[host] = value
            complete = len(values) == len(self.hosts)
            if complete:
                del self._gathers[seq]
        if complete:
            self._broadcast({"type": "gathered", "seq": seq,
                             "values": [values[h] for h in self.hosts]})

    def _fail(self, host: str, kind: str, detail=None, tell_the_host: bool = False) -> None:
        with self._lock:
            if host in self._failed:
                return
            self._failed[host] = (kind, detail)
        logger.error("watchdog hub: host %s %s %s", host, kind, "" if detail is None else detail)
        self._broadcast({"type": "abort", "host": host, "kind": kind, "detail": detail},
                        skip=None if tell_the_host else host)

    def report_failure(self, host: str, reason: str) -> None:
        """The master's own process failed: abort every other host."""
        self._fail(host, "failed", reason)

    def _broadcast(self, message: dict, skip: str = None) -> None:
        with self._lock:
            targets = [p for p in self._peers.values() if not p.closed and p.host != skip]
        for peer in targets:
            send_message(peer.sock, peer.lock, message)

    def _monitor_loop(self) -> None:
        while not self._stopped.wait(self.interval):
            self._broadcast({"type": "hb"})
            if time.monotonic() - self._started_at < self.startup_timeout:
                continue
            with self._lock:
                missing = [h for h in self.hosts if h not in self._peers and h not in self._failed]
            for host in missing:
                self._fail(host, "absent", self.startup_timeout)

    def wait_closed(self, timeout: float) -> bool:
        """Wait until every connected host hung up (after `release`); True if they all did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(p.closed for p in self._peers.values()):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Stop the threads and close every socket. Idempotent."""
        self._stopped.set()
        if self._listener is not None:
            for stop in (lambda: self._listener.shutdown(socket.SHUT_RDWR), self._listener.close):
                try:  # shutdown wakes the thread blocked in accept()
                    stop()
                except OSError:
                    pass
        with self._lock:
            peers = list(self._peers.values())
        for peer in peers:
            try:
                peer.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
