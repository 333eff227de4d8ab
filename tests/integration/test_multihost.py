"""Two "hosts" on this machine run the real training job with MXNet's dist_sync parameter server.

Each host gets its own SAGEMAKER_BASE_DIR with resourceconfig.json naming it as current_host;
SEQ2SEQ_HOST_MAP resolves algo-1 and algo-2 to 127.0.0.1. Checks: both workers end with identical
parameters and only algo-1 writes the model; killing either host's job makes the other fail with
a clear reason in its /opt/ml/output/failure within a bounded time, and no ps-lite process is left.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from seq2seq.training import training_state as ts
from tests.sagemaker_tree import TINY_MODEL, copy_task_pairs, write_tree
from tests.unit.test_distributed import free_port_pair

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOSTS = ("algo-1", "algo-2")
PEER_TIMEOUT_SECONDS = 5
STARTUP_SECONDS = 240     # five processes import MXNet at once on two cores
FAILURE_BOUND_SECONDS = 45

def make_hosts(tmp_path, **hyperparameters):
    """One /opt/ml tree per host with the same data; returns {host: base_dir}."""
    port = free_port_pair()
    hp = dict(TINY_MODEL, ps_port=port, peer_timeout_seconds=PEER_TIMEOUT_SECONDS, seed=5)
    hp.update(hyperparameters)
    train, validation = copy_task_pairs(400, seed=1), copy_task_pairs(32, seed=2)
    bases = {}
    for host in HOSTS:
        bases[host] = str(tmp_path / host)
        write_tree(bases[host], hp, train, validation,
                   {"current_host": host, "hosts": list(HOSTS), "network_interface_name": "lo"})
    return bases


def start_job(base_dir, log_path):
    env = dict(os.environ, SAGEMAKER_BASE_DIR=base_dir, PYTHONPATH=REPO, OMP_NUM_THREADS="1",
               SEQ2SEQ_HOST_MAP="algo-1=127.0.0.1,algo-2=127.0.0.1")
    log = open(log_path, "w")
    try:
        return subprocess.Popen([sys.executable, "-m", "seq2seq.train_job"], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    finally:
        log.close()


def stop_all(*procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def run_hosts(tmp_path, bases) -> dict:
    """Run the job on every host at once and wait; both must succeed. Returns each host's log path."""
    logs = {h: str(tmp_path / f"{h}.log") for h in HOSTS}
    procs = [start_job(bases[h], logs[h]) for h in HOSTS]
    try:
        codes = [proc.wait(timeout=STARTUP_SECONDS + 180) for proc in procs]
    finally:
        stop_all(*procs)
    assert codes == [0, 0], "\n".join(read(logs[h])[-3000:] for h in HOSTS)
    return logs


def read(path):
    with open(path, encoding="utf-8") as stream:
        return stream.read()


def ps_lite_pids(log_path):
    """Pids of the scheduler/server processes a job logged that it started."""
    return [int(pid) for pid in re.findall(r"started the ps-lite \w+, pid (\d+)", read(log_path))]


def final_checkpoint(base_dir):
    """(update, {name: array}) of the training state a host saved last: every host saves its own."""
    checkpoint_dir = os.path.join(base_dir, "checkpoints")
    state = json.loads(read(os.path.join(ts.state_dir(checkpoint_dir), ts.STATE_FILE)))
    parameters = {name: array.asnumpy() for name, array in mx.nd.load(ts.params_path(checkpoint_dir)).items()}
    return state["num_updates"], parameters


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for_log(log_path, pattern, seconds, procs):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if re.search(pattern, read(log_path)):
            return
        if any(proc.poll() is not None for proc in procs):
            break
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} did not appear in {log_path}:\n{read(log_path)[-3000:]}")


def test_two_hosts_end_with_identical_parameters_and_only_host_0_writes_the_model(tmp_path):
    bases = make_hosts(tmp_path, max_num_batches=24, checkpoint_frequency_num_batches=12)
    logs = run_hosts(tmp_path, bases)
    first_update, first = final_checkpoint(bases["algo-1"])
    second_update, second = final_checkpoint(bases["algo-2"])
    assert first_update == second_update == 24     # saved after the last update: the final parameters
    assert sorted(first) == sorted(second)
    assert len(first) > 5
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    assert os.path.exists(os.path.join(bases["algo-1"], "model", "params.best"))
    assert not os.path.exists(os.path.join(bases["algo-2"], "model", "params.best"))
    assert "training finished after 24 updates" in read(logs["algo-2"])
    assert "#quality_metric: host=algo-1" in read(logs["algo-1"])      # the objective's lines: once, from host 0
    assert "#quality_metric" not in read(logs["algo-2"])
    metrics = json.loads(read(os.path.join(bases["algo-1"], "model", "metrics.json")))
    assert metrics["num_updates"] == 24
    for host in HOSTS:
        assert not any(alive(pid) for pid in ps_lite_pids(logs[host])), f"ps-lite left on {host}"


@pytest.mark.parametrize("victim,survivor", [("algo-2", "algo-1"), ("algo-1", "algo-2")])
def test_a_killed_host_makes_the_other_fail_with_a_clear_reason(tmp_path, victim, survivor):
    bases = make_hosts(tmp_path, max_num_batches=100000, checkpoint_frequency_num_batches=100000,
                       log_frequency_num_batches=5)
    logs = {h: str(tmp_path / f"{h}.log") for h in HOSTS}
    procs = {h: start_job(bases[h], logs[h]) for h in HOSTS}
    try:
        wait_for_log(logs[victim], r"updates=10 ", STARTUP_SECONDS, procs.values())
        procs[victim].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        code = procs[survivor].wait(timeout=FAILURE_BOUND_SECONDS + 30)
        elapsed = time.monotonic() - killed_at
    finally:
        stop_all(*procs.values())
    survivor_log = read(logs[survivor])
    assert code != 0, survivor_log[-3000:]
    assert elapsed < FAILURE_BOUND_SECONDS, f"{survivor} took {elapsed:.0f} s to fail"
    reason = read(os.path.join(bases[survivor], "output", "failure"))
    assert re.search(rf"worker on host {victim} stopped responding \(connection lost at update \d+\); "
                     r"training cannot continue with wrong gradients", reason), reason
    assert not os.path.exists(os.path.join(bases[survivor], "output", "success"))
    time.sleep(2)  # ps-lite children get SIGTERM when their job dies
    for host in HOSTS:
        left = [pid for pid in ps_lite_pids(logs[host]) if alive(pid)]
        assert not left, f"ps-lite processes of {host} still running: {left}"
