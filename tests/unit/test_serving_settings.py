"""Serving settings from SageMaker's environment variables, GPU detection and worker devices."""
import pytest

from seq2seq.errors import UserError
from seq2seq.serving.settings import ServingSettings, default_cpu_workers, detect_gpu_count, worker_context


def test_defaults_on_a_cpu_host():
    settings = ServingSettings.from_env({"SEQ2SEQ_NUM_GPUS": "0"})
    assert (settings.port, settings.timeout_s, settings.max_payload_mb) == (8080, 60, 6.0)
    assert settings.workers == default_cpu_workers() >= 1
    assert settings.model_dir == "/opt/ml/model"
    assert settings.max_payload_bytes == 6 * 1024 * 1024
    assert settings.max_concurrent_transforms == settings.workers
    assert settings.batch_strategy == "MULTI_RECORD"


def test_sagemaker_variables_are_honoured():
    settings = ServingSettings.from_env({
        "SAGEMAKER_BIND_TO_PORT": "9001", "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "120", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20",
        "SAGEMAKER_BASE_DIR": "/tmp/ml", "SAGEMAKER_BATCH_STRATEGY": "single_record",
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "8", "SEQ2SEQ_BATCH_WAIT_MS": "2.5",
        "SEQ2SEQ_MAX_BATCH_SENTENCES": "16", "SEQ2SEQ_NUM_GPUS": "0",
    })
    assert (settings.port, settings.workers, settings.timeout_s) == (9001, 3, 120)
    assert settings.max_payload_bytes == 20 * 1024 * 1024
    assert settings.model_dir == "/tmp/ml/model"
    assert (settings.batch_strategy, settings.max_concurrent_transforms) == ("SINGLE_RECORD", 8)
    assert (settings.batch_wait_ms, settings.max_batch_sentences) == (2.5, 16)


def test_zero_payload_limit_means_unlimited():
    assert ServingSettings.from_env({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"}).max_payload_bytes is None


def test_one_worker_per_gpu_by_default():
    settings = ServingSettings.from_env({"CUDA_VISIBLE_DEVICES": "0,1,3"})
    assert (settings.num_gpus, settings.workers) == (3, 3)


@pytest.mark.parametrize("env, message", [
    ({"SAGEMAKER_BIND_TO_PORT": "http"}, "SAGEMAKER_BIND_TO_PORT='http' is not an integer"),
    ({"SAGEMAKER_BIND_TO_PORT": "70000"}, "at most 65535"),
    ({"SAGEMAKER_MODEL_SERVER_WORKERS": "0"}, "SAGEMAKER_MODEL_SERVER_WORKERS='0' must be at least 1"),
    ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "six"}, "SAGEMAKER_MAX_PAYLOAD_IN_MB='six' is not a number"),
    ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "nan"}, "is not a number"),
    ({"SAGEMAKER_BATCH_STRATEGY": "ALL"}, "SINGLE_RECORD, MULTI_RECORD"),
    ({"SEQ2SEQ_BATCH_WAIT_MS": "-1"}, "SEQ2SEQ_BATCH_WAIT_MS='-1' must be at least 0"),
    ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "inf"}, "SAGEMAKER_MAX_PAYLOAD_IN_MB='inf' is not a number"),
    ({"SEQ2SEQ_ACCESS_LOG": "yes"}, "SEQ2SEQ_ACCESS_LOG='yes' must be 1 or 0"),
    ({"SEQ2SEQ_WORKER_DEVICE": "tpu:0"}, "SEQ2SEQ_WORKER_DEVICE='tpu:0' must be cpu or gpu:<i>"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ServingSettings.from_env(env)


@pytest.mark.parametrize("visible, expected", [("", 0), ("-1", 0), ("NoDevFiles", 0), ("2", 1), ("0,1", 2)])
def test_gpu_count_follows_cuda_visible_devices(visible, expected):
    assert detect_gpu_count({"CUDA_VISIBLE_DEVICES": visible}) == expected


def test_worker_slots_map_round_robin_onto_gpus():
    assert [worker_context(slot, 2) for slot in range(5)] == ["gpu:0", "gpu:1", "gpu:0", "gpu:1", "gpu:0"]
    assert worker_context(3, 0) == "cpu"


@pytest.mark.parametrize("raw, expected", [("1", True), ("true", True), ("0", False), ("", False)])
def test_access_log_flag(raw, expected):
    assert ServingSettings.from_env({"SEQ2SEQ_ACCESS_LOG": raw, "SEQ2SEQ_NUM_GPUS": "0"}).access_log is expected


@pytest.mark.parametrize("env, device", [
    ({"SEQ2SEQ_NUM_GPUS": "0"}, "cpu"), ({"SEQ2SEQ_NUM_GPUS": "2"}, "gpu:0"),
    ({"SEQ2SEQ_NUM_GPUS": "2", "SEQ2SEQ_WORKER_DEVICE": "GPU:1"}, "gpu:1"),
])
def test_the_worker_device_defaults_to_the_first_gpu_or_the_cpu(env, device):
    assert ServingSettings.from_env(env).device == device
