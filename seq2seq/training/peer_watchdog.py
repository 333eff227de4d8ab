"""Peer-death detection for multi-host training over a small TCP side channel.

MXNet's `dist_sync` kvstore does not notice when a worker dies: the survivors keep stepping with
the gradients of the workers that are left, and a kvstore call can block forever when a server or
the scheduler is gone. So every training process also runs a `PeerWatchdog`:

* the process on `hosts[0]` (the master) runs a `HeartbeatHub` that listens on one TCP port;
* every process, the master's own included, connects to the hub, says `hello`, and sends a
  heartbeat every `heartbeat_interval_seconds`; the hub sends heartbeats back;
* when a connection drops without a clean `done`, a peer is silent for `peer_timeout_seconds`,
  a peer reports a failure, or a host never connects, the hub broadcasts `abort` to every
  survivor; a worker whose connection to the hub drops or goes silent aborts on its own;
* the trainer calls `check(update)` once per update; it raises `DistributedError` naming the host;
* after an abort the watchdog arms a hard deadline: if the process is still alive
  `exit_deadline_seconds` later (stuck in a kvstore call, or in ps-lite's finalization), it hands
  the reason to `on_fatal` (the job writes /opt/ml/output/failure) and calls `exit_fn(1)`.

Messages are JSON objects, one per line (UTF-8): `hello`, `hb`, `done`, `fail`, `gather` from a
worker; `hb`, `abort`, `finished`, `release`, `gathered` from the hub.
"""

import logging
import os
import socket
import sys
import threading
import time
from typing import Callable, Optional, Sequence

from seq2seq.errors import DistributedError
from seq2seq.training.heartbeat_hub import HeartbeatHub, LineReader, send_message

logger = logging.getLogger(__name__)

WRONG_GRADIENTS = "training cannot continue with wrong gradients"


def describe_abort(message: dict, update: int, master_host: str, port: int) -> str:
    """Turn the hub's `abort` message into the sentence the job reports as its failure reason."""
    host, kind, detail = message.get("host"), message.get("kind"), message.get("detail")
    if kind == "lost":
        return (f"worker on host {host} stopped responding (connection lost at update {update}); "
                f"{WRONG_GRADIENTS}")
    if kind == "silent":
        return (f"worker on host {host} stopped responding (no heartbeat for {detail:g} s "
                f"at update {update}); {WRONG_GRADIENTS}")
    if kind == "failed":
        return (f"worker on host {host} failed ({detail}); this host stopped at update {update} "
                f"because {WRONG_GRADIENTS}")
    if kind == "diverged":
        return (f"the hosts finished after different numbers of updates ({detail}); "
                f"their stopping decisions diverged")
    if kind == "absent":
        return (f"worker on host {host} did not connect to the master {master_host} within "
                f"{detail:g} s; check that every host runs the training job and that TCP port "
                f"{port} on {master_host} is reachable")
    return f"worker on host {host} stopped ({kind}: {detail}) at update {update}; {WRONG_GRADIENTS}"


class PeerWatchdog:
    """One training process's view of its peers. Construct, `start()`, then `check()` per update.

    host: this process's host name; hosts: every host, `hosts[0]` is the master; master_address:
    `(ip, port)` of the hub. Times are in seconds. `on_fatal(reason)` is called before a hard exit.
    """

    def __init__(self, host: str, hosts: Sequence[str], master_address: tuple, *,
                 peer_timeout_seconds: float = 60.0, startup_timeout_seconds: float = 900.0,
                 heartbeat_interval_seconds: float = 1.0, exit_deadline_seconds: float = None,
                 on_fatal: Optional[Callable[[str], None]] = None,
                 exit_fn: Callable[[int], None] = os._exit):
        if host not in hosts:
            raise DistributedError(f"current host {host!r} is not in the host list {list(hosts)}")
        self.host = host
        self.hosts = list(hosts)
        self.master_host = self.hosts[0]
        self.master_address = (master_address[0], int(master_address[1]))
        self.peer_timeout = float(peer_timeout_seconds)
        self.startup_timeout = float(startup_timeout_seconds)
        self.interval = float(heartbeat_interval_seconds)
        self.exit_deadline = float(exit_deadline_seconds if exit_deadline_seconds is not None
                                   else peer_timeout_seconds)
        self.on_fatal = on_fatal
        self.exit_fn = exit_fn
        self.update = 0
        self._hub = None
        if host == self.master_host:
            self._hub = HeartbeatHub(self.hosts, self.master_address[1], self.peer_timeout,
                                     self.startup_timeout, self.interval)
        self._sock = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._stopped = threading.Event()
        self._failure = None
        self._released = False
        self._finished = False
        self._gathered = {}
        self._finished_peers = {}
        self._gather_seq = 0
        self._deadline_thread = None

    @property
    def is_master(self) -> bool:
        return self._hub is not None

    @property
    def failure(self) -> Optional[str]:
        """The failure reason once a peer (or this process) failed, else None."""
        return self._failure

    def start(self) -> "PeerWatchdog":
        """Start the hub (on the master) and connect to it, retrying until the startup timeout.

        Raises DistributedError when the master cannot be reached in time.
        """
        if self._hub is not None:
            self._hub.start()
        self._sock = self._connect()
        send_message(self._sock, self._send_lock, {"type": "hello", "host": self.host})
        for target, name in ((self._read_loop, "watchdog-reader"),
                             (self._heartbeat_loop, "watchdog-heartbeat")):
            threading.Thread(target=target, name=name, daemon=True).start()
        return self

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + self.startup_timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                sock = socket.create_connection(self.master_address, timeout=5.0)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(self.peer_timeout)
                return sock
            except OSError as error:
                last_error = error
                time.sleep(min(0.5, self.interval))
        ip, port = self.master_address
        raise DistributedError(
            f"host {self.host} could not reach the master {self.master_host} at {ip}:{port} "
            f"within {self.startup_timeout:g} s ({last_error}); check that every host runs the "
            f"training job and that the port is reachable")

    def _read_loop(self) -> None:
        reader = LineReader(self._sock)
        while not self._stopped.is_set():
            try:
                message = reader.read()
            except TimeoutError:
                self._abort({"host": self.master_host, "kind": "silent", "detail": self.peer_timeout})
                return
            except (OSError, ValueError):
                message = None
            if message is None:
                if not (self._released or self._stopped.is_set()):
                    self._abort({"host": self.master_host, "kind": "lost"})
                return
            self._handle(message)

    def _handle(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "abort":
            self._abort(message)
        elif kind == "release":
            with self._cond:
                self._released = True
                self._cond.notify_all()
        elif kind == "finished":
            with self._cond:
                self._finished_peers[message["host"]] = message.get("update")
        elif kind == "gathered":
            with self._cond:
                self._gathered[message["seq"]] = message["values"]
                self._cond.notify_all()

    def _heartbeat_loop(self) -> None:
        while not self._stopped.wait(self.interval):
            if not send_message(self._sock, self._send_lock, {"type": "hb"}):
                if not (self._released or self._stopped.is_set()):
                    self._abort({"host": self.master_host, "kind": "lost"})
                return

    def _abort(self, message: dict) -> None:
        reason = describe_abort(message, self.update, self.master_host, self.master_address[1])
        self._set_failure(reason)

    def _set_failure(self, reason: str) -> None:
        with self._cond:
            if self._failure is not None or self._finished:
                return
            self._failure = reason
            self._cond.notify_all()
        logger.error("distributed training failure: %s", reason)
        self._deadline_thread = threading.Thread(target=self._deadline, name="watchdog-deadline",
                                                 daemon=True)
        self._deadline_thread.start()

    def _deadline(self) -> None:
        """Hard stop: a process still alive this long after an abort is stuck in MXNet."""
        time.sleep(self.exit_deadline)
        reason = self._failure
        print(f"distributed training failure, exiting: {reason}", file=sys.stderr, flush=True)
        if self.on_fatal is not None:
            try:
                self.on_fatal(reason)
            except Exception:  # the exit below matters more than the report
                logger.exception("the failure callback raised")
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        self.exit_fn(1)

    def check(self, update: int = None) -> None:
        """Call right before each update. Raises DistributedError if a peer (or this process)
        failed, or if a peer already finished at an earlier update (diverged stopping decisions).

        update: the number of updates done so far on this host; counts calls if None.
        """
        self.update = self.update + 1 if update is None else int(update)
        if self._failure is None and self._finished_peers:
            self._check_not_beyond_finished_peers()
        if self._failure is not None:
            raise DistributedError(self._failure)

    def _check_not_beyond_finished_peers(self) -> None:
        with self._cond:
            beyond = [(host, last) for host, last in self._finished_peers.items()
                      if last is not None and self.update > last]
        if beyond:
            host, last = beyond[0]
            self.fail(f"worker on host {host} finished at update {last} while host {self.host} "
                      f"went on to update {self.update}; the hosts' stopping decisions diverged "
                      f"and dist_sync cannot continue")

    def fail(self, reason: str) -> None:
        """Report that this process is failing, so that every peer stops too (then exit)."""
        self._set_failure(reason)
        if self._hub is not None:  # the master tells the others itself, without a round trip
            self._hub.report_failure(self.host, reason[:1000])
        elif self._sock is not None:
            send_message(self._sock, self._send_lock, {"type": "fail", "reason": reason[:1000]})

    def _wait_for(self, predicate: Callable[[], bool], timeout: float = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not predicate():
                if self._failure is not None:
                    raise DistributedError(self._failure)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DistributedError(f"host {self.host} timed out after {timeout:g} s "
                                           f"waiting for the other hosts")
                self._cond.wait(0.5 if remaining is None else min(0.5, remaining))

    def allgather(self, value=None, timeout: float = None) -> list:
        """Every host contributes a JSON-serialisable value; returns them all in `hosts` order.

        Every host must make the same sequence of allgather/barrier calls.
        """
        if self._failure is not None:
            raise DistributedError(self._failure)
        seq = self._gather_seq
        self._gather_seq += 1
        send_message(self._sock, self._send_lock, {"type": "gather", "seq": seq, "value": value})
        self._wait_for(lambda: seq in self._gathered, timeout)
        with self._cond:
            return self._gathered.pop(seq)

    def finish(self, timeout: float = None) -> None:
        """Clean end: say `done`, wait until every host said it too, then close the channel.

        Call after the last update (and after `mx.nd.waitall()`), before writing the model. The
        last `check()` value travels with `done`: hosts that disagree all get DistributedError,
        as they do when a peer failed before finishing.
        """
        if self._failure is not None:
            raise DistributedError(self._failure)
        send_message(self._sock, self._send_lock, {"type": "done", "update": self.update})
        self._wait_for(lambda: self._released, timeout)
        with self._cond:
            self._finished = True
        self._shutdown()
        if self._hub is not None:
            self._hub.wait_closed(timeout=10.0)
            self._hub.close()

    def _shutdown(self) -> None:
        self._stopped.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()

    def close(self) -> None:
        """Drop the channel without `done` (peers treat this host as lost). Idempotent."""
        self._shutdown()
        if self._hub is not None:
            self._hub.close()
