"""The decoding process settings: defaults where unset, a user's value kept, CPUs shared among workers."""

import subprocess
import sys

from seq2seq import runtime_env


def test_defaults_fill_only_what_is_unset(monkeypatch):
    monkeypatch.setattr(runtime_env, "available_cpus", lambda: 4)
    environ = {"MXNET_ENGINE_TYPE": "ThreadedEnginePerDevice"}
    described = runtime_env.apply(workers=2, environ=environ)
    assert environ == {"MXNET_ENGINE_TYPE": "ThreadedEnginePerDevice", "OMP_NUM_THREADS": "2"}
    assert described["OMP_NUM_THREADS"] == "2" and described["OMP_WAIT_POLICY"] == "unset"
    assert described["cpus"] == "4"
    assert runtime_env.decoding_defaults(workers=8) == {"OMP_NUM_THREADS": "1", "MXNET_ENGINE_TYPE": "NaiveEngine"}


def test_the_settings_reach_mxnet():
    """The settings reach MXNet: set before its import, they decide the engine it starts."""
    code = ("import os, sys; from seq2seq import runtime_env; runtime_env.apply(); import mxnet as mx; "
            "mx.nd.ones((2,)).asnumpy(); print(os.environ['MXNET_ENGINE_TYPE'], os.environ['OMP_NUM_THREADS'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["NaiveEngine", str(runtime_env.available_cpus())]
    assert "MXNet start using engine: NaiveEngine" in result.stderr


def test_translate_prints_no_engine_line(tmp_path):
    """MXNet announces a chosen engine on stderr; the command line keeps that line from its users."""
    code = ("from seq2seq import runtime_env; runtime_env.apply(); import sys; mx = runtime_env.import_mxnet(); "
            "print('after', file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."})
    assert result.returncode == 0, result.stderr
    assert result.stderr == "after\n"
