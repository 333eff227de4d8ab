"""seq2seq.serving.wsgi: apps built from the settings they are given, and an import that reads nothing."""
import json
import os
import subprocess
import sys
from pathlib import Path

from seq2seq.serving.app import create_app
from seq2seq.serving.providers import DirectProvider
from seq2seq.serving.settings import ServingSettings
from seq2seq.serving.wsgi import app_from_environment, create_server_app
from serving_fakes import ReversingTranslator

ROOT = Path(__file__).resolve().parents[2]


def test_two_apps_with_different_settings_share_nothing():
    first_translator, second_translator = ReversingTranslator(), ReversingTranslator()
    first = create_app(DirectProvider(first_translator),
                       ServingSettings(max_concurrent_transforms=2, max_payload_mb=0.001))
    second = create_app(DirectProvider(second_translator),
                        ServingSettings(max_concurrent_transforms=5, batch_strategy="SINGLE_RECORD"))
    assert first.test_client().get("/execution-parameters").get_json() == {
        "MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 0.001}
    assert second.test_client().get("/execution-parameters").get_json() == {
        "MaxConcurrentTransforms": 5, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 6}
    body = {"instances": [{"data": "ein hund " * 200}]}
    assert first.test_client().post("/invocations", json=body).status_code == 413
    assert second.test_client().post("/invocations", json=body).status_code == 200
    assert (len(first_translator.calls), len(second_translator.calls)) == (0, 1)


def test_default_providers_load_each_apps_own_model_directory_lazily(tmp_path):
    first = create_server_app(ServingSettings(base_dir=str(tmp_path / "first")))
    second = create_server_app(ServingSettings(base_dir=str(tmp_path / "second"), device="gpu:3"))
    first_provider, second_provider = (app.extensions["seq2seq_provider"] for app in (first, second))
    assert first_provider is not second_provider
    assert not first_provider.started and not second_provider.started  # building an app loads nothing
    first.test_client().get("/ping")
    assert first_provider.started and not second_provider.started
    first_provider.wait_until_ready(5)
    error = first.test_client().get("/ping").get_json()["error"]
    assert f"model directory {tmp_path / 'first' / 'model'} does not exist" in error
    assert second.extensions["seq2seq_settings"].device == "gpu:3"


def test_app_from_environment_reads_the_mapping_it_is_given(tmp_path):
    app = app_from_environment({"SAGEMAKER_BASE_DIR": str(tmp_path), "SEQ2SEQ_NUM_GPUS": "0",
                                "SAGEMAKER_MODEL_SERVER_TIMEOUT": "9", "SEQ2SEQ_WORKER_DEVICE": "gpu:2"})
    settings = app.extensions["seq2seq_settings"]
    assert (settings.base_dir, settings.timeout_s, settings.device) == (str(tmp_path), 9, "gpu:2")
    assert app.extensions["seq2seq_provider"].started


def test_importing_the_wsgi_module_reads_no_environment():
    """Import it with every serving variable set to garbage and os.environ recording its readers."""
    probe = """
import json, os, sys
read = []
class Recording(type(os.environ)):
    def __getitem__(self, key):
        read.append(key)
        return super().__getitem__(key)
os.environ = Recording(os.environ._data, os.environ.encodekey, os.environ.decodekey,
                       os.environ.encodevalue, os.environ.decodevalue)
import seq2seq.serving.wsgi as wsgi
ours = sorted({k for k in read if k.startswith(("SAGEMAKER_", "SEQ2SEQ_", "CUDA_"))})
public = sorted(n for n, v in vars(wsgi).items() if not n.startswith("_") and isinstance(v, (dict, list, set)))
print(json.dumps({"read": ours, "mutable": public, "mxnet": "mxnet" in sys.modules}))
"""
    poisoned = {name: "garbage" for name in (
        "SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MODEL_SERVER_WORKERS", "SAGEMAKER_MAX_PAYLOAD_IN_MB",
        "SAGEMAKER_BATCH_STRATEGY", "SEQ2SEQ_NUM_GPUS", "SEQ2SEQ_WORKER_DEVICE", "SEQ2SEQ_ACCESS_LOG",
        "CUDA_VISIBLE_DEVICES")}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
               **poisoned)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env,
                            cwd=str(ROOT))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"read": [], "mutable": [], "mxnet": False}
