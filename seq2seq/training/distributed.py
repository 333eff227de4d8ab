"""Multi-host training with MXNet's parameter server (`dist_sync`), the way SageMaker's MXNet
containers launch it, plus the data sharding rules that keep `dist_sync` workers in step.

On every host the training job calls `start_parameter_server(...)` before creating the kvstore:
`hosts[0]` also starts the scheduler, every host starts one server (`python -c "import mxnet"`
with `DMLC_ROLE` set), and the `DMLC_*` worker variables are put into this process's environment.
Only the scheduler port (`ps_port`) is fixed: ps-lite servers and workers bind to a free port of
their own and register it with the scheduler, so several "hosts" can share one machine. The peer
watchdog listens on `ps_port + 1` on `hosts[0]`.

`SEQ2SEQ_HOST_MAP="algo-1=127.0.0.1,algo-2=127.0.0.1"` overrides name resolution (local runs and
tests); other names are resolved with retries.
"""

import atexit
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from seq2seq.errors import DistributedError, UserError
from seq2seq.training.peer_watchdog import PeerWatchdog

logger = logging.getLogger(__name__)

HOST_MAP_VARIABLE = "SEQ2SEQ_HOST_MAP"
PR_SET_PDEATHSIG = 1


def parse_host_map(text: str, source: str = HOST_MAP_VARIABLE) -> dict:
    """Parse `"name=ip,name=ip"` into `{name: ip}`; UserError naming `source` on a bad entry."""
    mapping = {}
    for entry in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, address = entry.partition("=")
        if not sep or not name.strip() or not address.strip():
            raise UserError(f"{source}: entry {entry!r} is not of the form host=address "
                            f"(example: algo-1=127.0.0.1,algo-2=127.0.0.1)")
        mapping[name.strip()] = address.strip()
    return mapping


def resolve_with_map(host: str, host_map: dict, retries: int, delay_seconds: float) -> str:
    """IPv4 address of `host`: from `host_map` if listed, else DNS with retries."""
    if host in host_map:
        return host_map[host]
    from seq2seq.opt_ml import resolve_host
    return resolve_host(host, retries, delay_seconds)


def role_environment(role: str, master_ip: str, ps_port: int, num_hosts: int,
                     node_ip: str = None, verbose: int = 0) -> dict:
    """The `DMLC_*` variables of one ps-lite role: "scheduler", "server" or "worker".

    `node_ip` (DMLC_NODE_HOST) is the address this node advertises to the others; the scheduler
    always uses `master_ip:ps_port`.
    """
    if role not in ("scheduler", "server", "worker"):
        raise ValueError(f"unknown ps-lite role {role!r}")
    env = {"DMLC_ROLE": role, "DMLC_PS_ROOT_URI": master_ip, "DMLC_PS_ROOT_PORT": str(ps_port),
           "DMLC_NUM_SERVER": str(num_hosts), "DMLC_NUM_WORKER": str(num_hosts),
           "PS_VERBOSE": str(int(verbose))}
    if node_ip and role != "scheduler":
        env["DMLC_NODE_HOST"] = node_ip
    return env


def _die_with_parent() -> None:
    """Child-side: get SIGTERM when the job dies, even by SIGKILL (Linux prctl)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _check_ports_free(ps_port: int) -> None:
    """The master needs ps_port (scheduler) and ps_port + 1 (watchdog); fail early if taken."""
    for port, user in ((ps_port, "the ps-lite scheduler"), (ps_port + 1, "the peer watchdog")):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("", port))
            except OSError as error:
                raise UserError(f"hyperparameter ps_port={ps_port}: TCP port {port}, needed by "
                                f"{user}, is not free on this host ({error.strerror}); choose "
                                f"another ps_port") from error


def _launch(role: str, env_vars: dict) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(env_vars)
    process = subprocess.Popen([sys.executable, "-c", "import mxnet"], env=env,
                               stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    logger.info("started the ps-lite %s, pid %d (%s)", role, process.pid,
                " ".join(f"{k}={v}" for k, v in sorted(env_vars.items())))
    return process


@dataclass
class DistributedSetup:
    """This host's part of a multi-host job. The host's rank for sharding and for "only host 0 writes" is
    ResourceConfig.host_rank (its index in the sorted host list); it may differ from `kvstore.rank`."""

    hosts: tuple
    current_host: str
    master_ip: str
    ps_port: int
    watchdog: PeerWatchdog
    processes: dict = field(default_factory=dict)   # role -> Popen
    exit_fn: Callable[[int], None] = os._exit
    finished: bool = False
    kvstore: object = None

    def create_kvstore(self, kind: str = "dist_sync"):
        """Create the kvstore and keep a reference, so that ps-lite never finalizes it mid-exit."""
        import mxnet as mx
        self.kvstore = mx.kv.create(kind)
        return self.kvstore

    def check(self, update: int = None) -> None:
        """Per-update liveness check; raises DistributedError when a peer died."""
        self.watchdog.check(update)

    def finish(self, timeout: float = None) -> None:
        """After the last update: wait for MXNet's pending work, then for every host to finish."""
        import mxnet as mx
        mx.nd.waitall()
        self.watchdog.finish(timeout)
        self.finished = True

    def stop_processes(self, grace_seconds: float = 5.0) -> None:
        """Terminate the scheduler/server children, then kill those still alive."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for role, proc in self.processes.items():
            try:
                proc.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                logger.warning("the ps-lite %s ignored SIGTERM; killing it", role)
                proc.kill()
                proc.wait()

    def exit(self, code: int, reason: str = None) -> None:
        """End the process without ps-lite's finalization (which hangs when any peer is gone).

        Every host must end this way (after a kill, the children get SIGTERM from the kernel).
        Ending before `finish()`, whatever `code`, first tells the peers `reason`.
        """
        atexit.unregister(self._at_exit)
        if not self.finished:
            self.watchdog.fail(reason or f"the training process on host {self.current_host} "
                                         f"exited with code {code} before finishing")
            time.sleep(0.3)  # let the message reach the master before the connection drops
        self.watchdog.close()
        self.stop_processes()
        _flush_everything()
        self.exit_fn(code)

    def _at_exit(self) -> None:
        if not self.finished:
            self.exit(1)

    def _monitor_processes(self) -> None:
        stopped = threading.Event()
        while not stopped.wait(1.0) and not self.finished:
            for role, proc in self.processes.items():
                code = proc.poll()
                if code is not None and not self.finished:
                    self.watchdog.fail(f"the ps-lite {role} process on host {self.current_host} "
                                       f"exited with code {code}")
                    return


def _flush_everything() -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def start_parameter_server(resource_config, ps_port: int, verbose: int = 0, *,
                           peer_timeout_seconds: float = 60.0,
                           startup_timeout_seconds: float = 900.0,
                           on_fatal: Optional[Callable[[str], None]] = None,
                           host_map: dict = None, resolve_retries: int = 30,
                           resolve_delay_seconds: float = 1.0,
                           exit_fn: Callable[[int], None] = os._exit) -> DistributedSetup:
    """Start this host's ps-lite processes and the peer watchdog; set the worker variables.

    resource_config: has `current_host`, `hosts` (sorted; hosts[0] is the master).
    ps_port: scheduler port on hosts[0]; the watchdog uses ps_port + 1.
    on_fatal(reason): called before the watchdog's hard exit (write /opt/ml/output/failure).
    host_map: `{host: ip}`; defaults to $SEQ2SEQ_HOST_MAP. Then create the kvstore with
    `setup.create_kvstore()`.
    """
    hosts = tuple(resource_config.hosts)
    current = resource_config.current_host
    if current not in hosts:
        raise DistributedError(f"current host {current!r} is not one of the hosts {list(hosts)}")
    if not 1 <= int(ps_port) <= 65534:
        raise UserError(f"hyperparameter ps_port: {ps_port} leaves no room for the watchdog port "
                        f"ps_port + 1; allowed: 1..65534")
    if host_map is None:
        host_map = parse_host_map(os.environ.get(HOST_MAP_VARIABLE, ""))
    master_ip = resolve_with_map(hosts[0], host_map, resolve_retries, resolve_delay_seconds)
    node_ip = resolve_with_map(current, host_map, resolve_retries, resolve_delay_seconds)
    logger.info("multi-host training: host %s of %s, master %s at %s:%d", current, list(hosts),
                hosts[0], master_ip, ps_port)
    processes = {}
    if current == hosts[0]:
        _check_ports_free(ps_port)
        processes["scheduler"] = _launch(
            "scheduler", role_environment("scheduler", master_ip, ps_port, len(hosts), None, verbose))
    processes["server"] = _launch(
        "server", role_environment("server", master_ip, ps_port, len(hosts), node_ip, verbose))
    watchdog = PeerWatchdog(current, hosts, (master_ip, ps_port + 1),
                            peer_timeout_seconds=peer_timeout_seconds,
                            startup_timeout_seconds=startup_timeout_seconds,
                            on_fatal=on_fatal, exit_fn=exit_fn)
    setup = DistributedSetup(hosts, current, master_ip, int(ps_port), watchdog, processes, exit_fn)
    try:
        watchdog.start()
    except BaseException:
        setup.stop_processes()
        raise
    atexit.register(setup._at_exit)
    threading.Thread(target=setup._monitor_processes, name="ps-lite-monitor", daemon=True).start()
    os.environ.update(role_environment("worker", master_ip, ps_port, len(hosts), node_ip, verbose))
    return setup
