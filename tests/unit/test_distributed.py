"""Peer watchdog over loopback, sharding rules and ps-lite environment of seq2seq.training.distributed."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from seq2seq.errors import DistributedError, UserError
from seq2seq.training.distributed import parse_host_map, resolve_with_map, role_environment
from seq2seq.training.peer_watchdog import PeerWatchdog

HOSTS = ("algo-1", "algo-2")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port_pair() -> int:
    """A port p such that p and p + 1 are both free on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free pair of ports")


class ExitRecorder:
    """Stands in for os._exit and the failure-file callback; records what the watchdog did."""

    def __init__(self):
        self.codes, self.reasons = [], []
        self.called = threading.Event()

    def on_fatal(self, reason):
        self.reasons.append(reason)

    def exit(self, code):
        self.codes.append(code)
        self.called.set()


def make_watchdog(host, port, recorder, hosts=HOSTS, **kwargs):
    options = dict(peer_timeout_seconds=3.0, startup_timeout_seconds=10.0,
                   heartbeat_interval_seconds=0.2, exit_deadline_seconds=30.0)
    options.update(kwargs)
    return PeerWatchdog(host, hosts, ("127.0.0.1", port + 1), on_fatal=recorder.on_fatal,
                        exit_fn=recorder.exit, **options)


def start_pair(port, recorder, **kwargs):
    """Start the master's watchdog (hub and its own connection), then the second host's."""
    master = make_watchdog("algo-1", port, recorder, **kwargs)
    worker = make_watchdog("algo-2", port, recorder, **kwargs)
    master.start()
    worker.start()
    return master, worker


def wait_for_error(watchdog, within_seconds):
    """Call check() with increasing update numbers until it raises; return (error, seconds)."""
    started = time.monotonic()
    update = 0
    while time.monotonic() - started < within_seconds:
        update += 1
        try:
            watchdog.check(update)
        except DistributedError as error:
            return error, time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"no DistributedError within {within_seconds} s (update {watchdog.update}, "
                         f"finished peers {watchdog._finished_peers})")


def finish_in_background(watchdog):
    """Start watchdog.finish(timeout=10) in a thread; return the thread and the list its DistributedError goes to."""
    errors = []

    def finish():
        try:
            watchdog.finish(timeout=10)
        except DistributedError as error:
            errors.append(error)

    finisher = threading.Thread(target=finish)
    finisher.start()
    return finisher, errors


def run_in_threads(*calls):
    """Run callables concurrently; return their exceptions (None for success)."""
    errors = [None] * len(calls)

    def runner(index, call):
        try:
            call()
        except Exception as error:  # collected for the assertion
            errors[index] = error

    threads = [threading.Thread(target=runner, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return errors


@pytest.fixture
def port():
    return free_port_pair()


def test_clean_finish_raises_nothing_and_never_exits(port):
    recorder = ExitRecorder()
    master, worker = start_pair(port, recorder)
    for update in range(1, 6):
        master.check(update)
        worker.check(update)
        time.sleep(0.1)
    assert run_in_threads(master.finish, worker.finish) == [None, None]
    time.sleep(0.5)
    assert master.failure is None and worker.failure is None
    assert recorder.codes == [] and recorder.reasons == []


def test_peer_connection_lost_is_reported_by_the_master(port):
    recorder = ExitRecorder()
    master, worker = start_pair(port, recorder)
    master.check(7)
    worker.close()  # drops the connection without "done", as a killed process does
    error, seconds = wait_for_error(master, 5.0)
    assert "worker on host algo-2 stopped responding (connection lost at update" in str(error)
    assert "training cannot continue with wrong gradients" in str(error)
    assert seconds < 2.0
    master.close()


def test_master_death_is_reported_by_the_worker(port):
    recorder = ExitRecorder()
    master, worker = start_pair(port, recorder)
    master.close()
    error, _ = wait_for_error(worker, 5.0)
    assert "worker on host algo-1 stopped responding (connection lost" in str(error)
    worker.close()


def test_killed_peer_process_is_detected(port):
    """A real process connects as algo-2 and is killed with SIGKILL."""
    recorder = ExitRecorder()
    master = make_watchdog("algo-1", port, recorder)
    master.start()
    script = textwrap.dedent(f"""
        import time
        from seq2seq.training.peer_watchdog import PeerWatchdog
        dog = PeerWatchdog("algo-2", {list(HOSTS)!r}, ("127.0.0.1", {port + 1}),
                           heartbeat_interval_seconds=0.2).start()
        print("connected", flush=True)
        while True:
            dog.check()
            time.sleep(0.05)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "connected"
        for update in range(1, 4):
            master.check(update)
        child.send_signal(signal.SIGKILL)
        error, seconds = wait_for_error(master, 5.0)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert "algo-2" in str(error) and "connection lost" in str(error)
    assert seconds < 3.0
    master.close()


def test_silent_peer_is_reported_after_the_peer_timeout(port):
    recorder = ExitRecorder()
    master = make_watchdog("algo-1", port, recorder, peer_timeout_seconds=1.0)
    master.start()
    with socket.create_connection(("127.0.0.1", port + 1)) as frozen:
        frozen.sendall(b'{"type": "hello", "host": "algo-2"}\n')  # then never a heartbeat
        error, seconds = wait_for_error(master, 5.0)
    assert "worker on host algo-2 stopped responding (no heartbeat for 1 s" in str(error)
    assert 0.8 < seconds < 3.0
    master.close()


def test_host_that_never_connects_fails_the_job(port):
    recorder = ExitRecorder()
    master = make_watchdog("algo-1", port, recorder, startup_timeout_seconds=1.0)
    master.start()
    error, _ = wait_for_error(master, 5.0)
    assert "worker on host algo-2 did not connect to the master algo-1 within 1 s" in str(error)
    assert f"TCP port {port + 1}" in str(error)
    master.close()


def test_unreachable_master_fails_start_with_a_clear_message(port):
    worker = make_watchdog("algo-2", port, ExitRecorder(), startup_timeout_seconds=1.0)
    with pytest.raises(DistributedError, match=r"host algo-2 could not reach the master algo-1 at "
                                               rf"127\.0\.0\.1:{port + 1} within 1 s"):
        worker.start()


def test_reported_failure_reaches_the_other_host(port):
    recorder = ExitRecorder()
    master, worker = start_pair(port, recorder)
    worker.fail("train.rec record 12: token id 900 >= vocabulary size 500")
    error, _ = wait_for_error(master, 5.0)
    assert "worker on host algo-2 failed (train.rec record 12: token id 900" in str(error)
    with pytest.raises(DistributedError, match="token id 900"):
        worker.check()
    master.close()
    worker.close()


def test_hard_deadline_writes_the_reason_and_exits_when_check_is_not_reached(port):
    recorder = ExitRecorder()
    master, worker = start_pair(port, recorder, exit_deadline_seconds=0.5)
    master.check(41)
    worker.close()  # the master never calls check() again, as if stuck in a kvstore call
    assert recorder.called.wait(5.0), "the watchdog did not exit"
    assert recorder.codes == [1]
    assert len(recorder.reasons) == 1
    assert "algo-2 stopped responding (connection lost at update 41)" in recorder.reasons[0]
    master.close()


def test_finish_raises_when_a_peer_dies_before_finishing(port):
    recorder = ExitRecorder()
    master, worker = start_pair(port, recorder)
    finisher, errors = finish_in_background(master)
    time.sleep(0.3)
    worker.close()
    finisher.join(10)
    assert len(errors) == 1 and "algo-2" in str(errors[0])
    master.close()


def test_allgather_returns_values_in_host_order(port):
    recorder = ExitRecorder()
    master, worker = start_pair(port, recorder)
    results = {}

    def exchange(dog, value):
        results[dog.host] = dog.allgather(value, timeout=5)
        results[dog.host + "/second"] = dog.allgather({"batches": value * 10}, timeout=5)

    errors = run_in_threads(lambda: exchange(worker, 2), lambda: exchange(master, 1))
    assert errors == [None, None]
    assert results["algo-1"] == results["algo-2"] == [1, 2]
    assert results["algo-1/second"] == [{"batches": 10}, {"batches": 20}]
    assert run_in_threads(master.finish, worker.finish) == [None, None]


def test_three_hosts_one_death_aborts_both_survivors(port):
    recorder = ExitRecorder()
    hosts = ("algo-1", "algo-2", "algo-3")
    dogs = [make_watchdog(h, port, recorder, hosts=hosts) for h in hosts]
    for dog in dogs:
        dog.start()
    dogs[2].close()
    for survivor in dogs[:2]:
        error, _ = wait_for_error(survivor, 5.0)
        assert "worker on host algo-3 stopped responding (connection lost" in str(error)
    for dog in dogs[:2]:
        dog.close()


def test_host_map_parsing_and_errors():
    assert parse_host_map("algo-1=127.0.0.1, algo-2=10.0.0.2,") == {
        "algo-1": "127.0.0.1", "algo-2": "10.0.0.2"}
    assert parse_host_map("") == {}
    with pytest.raises(UserError, match=r"SEQ2SEQ_HOST_MAP: entry 'algo-2' is not of the form"):
        parse_host_map("algo-1=127.0.0.1,algo-2")
    assert resolve_with_map("algo-9", {"algo-9": "10.1.2.3"}, 0, 0.0) == "10.1.2.3"


def test_role_environment_follows_sagemakers_mxnet_launcher():
    server = role_environment("server", "10.0.0.1", 8000, 3, node_ip="10.0.0.2", verbose=1)
    assert server == {"DMLC_ROLE": "server", "DMLC_PS_ROOT_URI": "10.0.0.1",
                      "DMLC_PS_ROOT_PORT": "8000", "DMLC_NUM_SERVER": "3",
                      "DMLC_NUM_WORKER": "3", "PS_VERBOSE": "1", "DMLC_NODE_HOST": "10.0.0.2"}
    scheduler = role_environment("scheduler", "10.0.0.1", 8000, 3, node_ip="10.0.0.2")
    assert "DMLC_NODE_HOST" not in scheduler and scheduler["DMLC_ROLE"] == "scheduler"
    with pytest.raises(ValueError, match="unknown ps-lite role"):
        role_environment("observer", "10.0.0.1", 8000, 3)


def test_host_still_stepping_after_a_peer_finished_fails_both(port):
    """Diverged stopping decisions: algo-1 finishes after 5 updates, algo-2 goes on to a 6th."""
    recorder = ExitRecorder()
    master, worker = start_pair(port, recorder)
    for update in range(5):
        master.check(update)
        worker.check(update)
    finisher, errors = finish_in_background(master)
    error, _ = wait_for_error(worker, 5.0)  # checks 1, 2, ... : check(5) is one update too many
    finisher.join(10)
    assert "worker on host algo-1 finished at update 4 while host algo-2 went on" in str(error)
    assert len(errors) == 1 and "stopping decisions diverged" in str(errors[0])
    worker.close()


def test_finish_with_different_update_counts_fails_everyone(port):
    recorder = ExitRecorder()
    master, worker = start_pair(port, recorder)
    master.check(9)
    worker.check(8)  # algo-2 finishes first, one update short; algo-1 does not check again
    errors = run_in_threads(lambda: worker.finish(timeout=10), lambda: master.finish(timeout=10))
    assert all(isinstance(e, DistributedError) for e in errors), errors
    assert "the hosts finished after different numbers of updates (algo-1 after update 9, " \
           "algo-2 after update 8)" in str(errors[0])


def test_taken_scheduler_port_is_reported_before_anything_starts(port):
    from seq2seq.opt_ml import ResourceConfig
    from seq2seq.training.distributed import start_parameter_server
    config = ResourceConfig("algo-1", HOSTS)
    with socket.socket() as taken:
        taken.bind(("", port + 1))
        taken.listen()
        with pytest.raises(UserError, match=rf"hyperparameter ps_port={port}: TCP port {port + 1}, "
                                            r"needed by the peer watchdog, is not free"):
            start_parameter_server(config, port, host_map={h: "127.0.0.1" for h in HOSTS})
