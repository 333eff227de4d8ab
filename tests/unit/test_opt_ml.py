"""The /opt/ml layout and the readers of SageMaker's input configuration files."""

import json
import os
import socket
import threading
import time

import pytest

from seq2seq import opt_ml
from seq2seq.errors import DistributedError, UserError
from seq2seq.opt_ml import (
    ChannelConfig, RecordSource, ResourceConfig, SageMakerPaths, channel_record_sources, read_input_data_config,
    read_resource_config, resolve_host, vocab_files, wait_for_pipe,
)


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    return SageMakerPaths()


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle)


def write_file(path, data=b"\x0a\x02\x00\x00"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def assert_reading_fails_naming_file(read, paths, path, content, fragment):
    """`content` written to `path`: read(paths) raises a UserError that starts with `path` and holds `fragment`."""
    write_file(path, content.encode())
    with pytest.raises(UserError) as info:
        read(paths)
    assert str(info.value).startswith(path) and fragment in str(info.value)


def test_default_base_dir(monkeypatch):
    monkeypatch.delenv("SAGEMAKER_BASE_DIR", raising=False)
    paths = SageMakerPaths()
    assert paths.base_dir == "/opt/ml"
    assert paths.hyperparameters_file == "/opt/ml/input/config/hyperparameters.json"
    assert paths.channel_dir("train") == "/opt/ml/input/data/train"
    assert paths.checkpoint_dir == "/opt/ml/checkpoints"
    assert paths.failure_file == "/opt/ml/output/failure"


def test_base_dir_relocation(paths, tmp_path):
    root = str(tmp_path)
    assert paths.base_dir == root
    assert paths.input_config_dir == f"{root}/input/config"
    assert paths.hyperparameters_file == f"{root}/input/config/hyperparameters.json"
    assert paths.inputdataconfig_file == f"{root}/input/config/inputdataconfig.json"
    assert paths.resourceconfig_file == f"{root}/input/config/resourceconfig.json"
    assert paths.data_dir == f"{root}/input/data"
    assert paths.channel_dir("vocab") == f"{root}/input/data/vocab"
    assert paths.pipe_path("train", 3) == f"{root}/input/data/train_3"
    assert paths.model_dir == f"{root}/model"
    assert paths.output_dir == f"{root}/output"
    assert paths.output_data_dir == f"{root}/output/data"
    assert paths.failure_file == f"{root}/output/failure"
    assert paths.success_file == f"{root}/output/success"
    assert paths.checkpoint_dir == f"{root}/checkpoints"


def test_environment_is_read_when_created_not_at_import(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "a"))
    first = SageMakerPaths()
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "b"))
    assert first.base_dir.endswith("a") and SageMakerPaths().base_dir.endswith("b")
    assert SageMakerPaths("/elsewhere").model_dir == "/elsewhere/model"


def test_input_data_config_file_and_pipe(paths):
    write_json(paths.inputdataconfig_file, {
        "train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "Pipe",
                  "S3DistributionType": "ShardedByS3Key", "RecordWrapperType": "None"},
        "validation": {"TrainingInputMode": "File"},
        "vocab": {"TrainingInputMode": "FastFile", "S3DistributionType": "FullyReplicated"},
    })
    configs = read_input_data_config(paths)
    assert configs["train"] == ChannelConfig("train", "Pipe", "application/x-recordio-protobuf", "ShardedByS3Key",
                                             "None")
    assert configs["train"].is_pipe
    assert configs["validation"] == ChannelConfig("validation", "File", None, "FullyReplicated", "None")
    assert configs["vocab"].input_mode == "File" and not configs["vocab"].is_pipe


def test_input_data_config_missing_means_file_mode_for_present_channels(paths):
    assert read_input_data_config(paths) == {}
    for channel in ("train", "vocab"):
        os.makedirs(paths.channel_dir(channel))
    write_file(os.path.join(paths.data_dir, "train_0"))  # a stray file is not a channel
    assert read_input_data_config(paths) == {"train": ChannelConfig("train"), "vocab": ChannelConfig("vocab")}


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "the input data configuration is not valid JSON"),
    ("[]", "must be a JSON object of channels"),
    ('{"train": "File"}', "channel 'train' must be a JSON object"),
    ('{"train": {"TrainingInputMode": "Stream"}}', "channel 'train' has TrainingInputMode \"Stream\"; "
                                                   "allowed: File, FastFile, Pipe"),
])
def test_input_data_config_errors_name_file(paths, content, fragment):
    assert_reading_fails_naming_file(read_input_data_config, paths, paths.inputdataconfig_file, content, fragment)


def test_file_mode_sources_sorted_recursive_and_only_rec(paths):
    directory = paths.channel_dir("train")
    for name in ("b.rec", "a.rec", "notes.txt", "sub/c.rec", "a.rec.tmp"):
        write_file(os.path.join(directory, name))
    sources = channel_record_sources(paths, "train", epoch=5)
    assert sources == [RecordSource(os.path.join(directory, name)) for name in ("a.rec", "b.rec", "sub/c.rec")]
    assert not any(source.is_pipe for source in sources)


def test_missing_channel_names_channel_and_directory(paths):
    with pytest.raises(UserError) as info:
        channel_record_sources(paths, "validation")
    message = str(info.value)
    assert message.startswith("channel 'validation': directory ") and paths.channel_dir("validation") in message


def test_channel_without_rec_files(paths):
    write_file(os.path.join(paths.channel_dir("train"), "train.txt"))
    with pytest.raises(UserError, match=f"channel 'train': no .rec file in {paths.channel_dir('train')}"):
        channel_record_sources(paths, "train")


def test_channel_with_only_empty_rec_files(paths):
    write_file(os.path.join(paths.channel_dir("train"), "train.rec"), b"")
    with pytest.raises(UserError, match=r"channel 'train': every \.rec file in .* is empty \(train\.rec\)"):
        channel_record_sources(paths, "train")


def test_record_wrapper_recordio_is_refused(paths):
    write_file(os.path.join(paths.channel_dir("train"), "train.rec"))
    configs = {"train": ChannelConfig("train", record_wrapper_type="RecordIO")}
    with pytest.raises(UserError, match="channel 'train' has RecordWrapperType \"RecordIO\"; .* must be \"None\""):
        channel_record_sources(paths, "train", configs=configs)


def test_pipe_mode_source_is_the_epoch_fifo(paths):
    configs = {"train": ChannelConfig("train", "Pipe")}
    os.makedirs(paths.data_dir)
    os.mkfifo(paths.pipe_path("train", 2))
    assert channel_record_sources(paths, "train", epoch=2, configs=configs) == [
        RecordSource(paths.pipe_path("train", 2), is_pipe=True)]


def test_pipe_mode_reads_input_data_config(paths):
    write_json(paths.inputdataconfig_file, {"train": {"TrainingInputMode": "Pipe"}})
    os.makedirs(paths.data_dir)
    os.mkfifo(paths.pipe_path("train", 0))
    assert channel_record_sources(paths, "train")[0].is_pipe


def test_pipe_mode_waits_for_the_fifo_to_appear(paths):
    os.makedirs(paths.data_dir)
    fifo = paths.pipe_path("train", 1)
    timer = threading.Timer(0.3, os.mkfifo, args=(fifo,))
    timer.start()
    try:
        sources = channel_record_sources(paths, "train", 1, {"train": ChannelConfig("train", "Pipe")},
                                         pipe_timeout_seconds=10)
    finally:
        timer.join()
    assert sources == [RecordSource(fifo, True)]


def test_pipe_mode_timeout_is_bounded_and_named(paths):
    started = time.monotonic()
    with pytest.raises(UserError) as info:
        channel_record_sources(paths, "train", 4, {"train": ChannelConfig("train", "Pipe")}, pipe_timeout_seconds=0.3)
    assert time.monotonic() - started < 3
    assert f"channel 'train' is in Pipe mode but its FIFO {paths.pipe_path('train', 4)} did not appear" in str(
        info.value)


def test_wait_for_pipe_rejects_a_directory(paths):
    os.makedirs(paths.pipe_path("train", 0))
    with pytest.raises(UserError, match="is neither a FIFO nor a file"):
        wait_for_pipe(paths.pipe_path("train", 0), "train", 1)


def test_vocab_files(paths):
    directory = paths.channel_dir("vocab")
    source = write_file(os.path.join(directory, "vocab.src.json"), b"{}")
    target = write_file(os.path.join(directory, "vocab.trg.json"), b"{}")
    assert vocab_files(paths) == (source, target)


def test_vocab_channel_missing(paths):
    with pytest.raises(UserError, match=r"channel 'vocab': directory .* does not exist.*vocab\.src\.json"):
        vocab_files(paths)


def test_vocab_file_missing_lists_what_is_there(paths):
    write_file(os.path.join(paths.channel_dir("vocab"), "vocab.src.json"), b"{}")
    write_file(os.path.join(paths.channel_dir("vocab"), "vocab.tgt.json"), b"{}")
    with pytest.raises(UserError) as info:
        vocab_files(paths)
    assert str(info.value) == (f"channel 'vocab': vocab.trg.json is missing from {paths.channel_dir('vocab')} "
                               "(it holds: vocab.src.json, vocab.tgt.json)")


def test_vocab_channel_in_pipe_mode_is_refused(paths):
    with pytest.raises(UserError, match="channel 'vocab' must use File mode"):
        vocab_files(paths, {"vocab": ChannelConfig("vocab", "Pipe")})


def test_resource_config_absent_means_single_host(paths):
    config = read_resource_config(paths)
    assert config == ResourceConfig("algo-1", ("algo-1",), "eth0")
    assert (config.host_rank, config.is_master, config.num_hosts, config.master_host) == (0, True, 1, "algo-1")


def test_resource_config_multi_host(paths):
    write_json(paths.resourceconfig_file, {"current_host": "algo-2", "hosts": ["algo-3", "algo-1", "algo-2"],
                                           "network_interface_name": "eth1", "current_instance_type": "ml.p3.2xlarge"})
    config = read_resource_config(paths)
    assert config.hosts == ("algo-1", "algo-2", "algo-3")
    assert (config.current_host, config.network_interface_name) == ("algo-2", "eth1")
    assert (config.host_rank, config.is_master, config.num_hosts, config.master_host) == (1, False, 3, "algo-1")


@pytest.mark.parametrize("content, fragment", [
    ("{", "the resource configuration is not valid JSON"),
    ('{"current_host": "algo-1"}', "'hosts' must be a non-empty list of host names, got null"),
    ('{"current_host": "algo-1", "hosts": []}', "'hosts' must be a non-empty list"),
    ('{"current_host": "algo-1", "hosts": ["algo-1", "algo-1"]}', "'hosts' lists a host twice"),
    ('{"current_host": "algo-9", "hosts": ["algo-1", "algo-2"]}',
     "'current_host' \"algo-9\" is not one of the hosts [\"algo-1\", \"algo-2\"]"),
])
def test_resource_config_errors_name_file(paths, content, fragment):
    assert_reading_fails_naming_file(read_resource_config, paths, paths.resourceconfig_file, content, fragment)


class FlakyResolver:
    """Stands in for socket.gethostbyname: fails `failures` times, then answers."""

    def __init__(self, failures: int, address: str = "10.0.0.7"):
        self.failures, self.address, self.calls = failures, address, []

    def __call__(self, name):
        self.calls.append(name)
        if len(self.calls) <= self.failures:
            raise socket.gaierror(-2, "Name or service not known")
        return self.address


def test_resolve_host_retries_until_dns_answers(monkeypatch):
    resolver, sleeps = FlakyResolver(failures=2), []
    monkeypatch.setattr(opt_ml.socket, "gethostbyname", resolver)
    monkeypatch.setattr(opt_ml.time, "sleep", sleeps.append)
    assert resolve_host("algo-2", retries=5, delay_seconds=0.5) == "10.0.0.7"
    assert resolver.calls == ["algo-2"] * 3
    assert sleeps == [0.5, 0.5]


def test_resolve_host_gives_up_after_bounded_retries(monkeypatch):
    resolver, sleeps = FlakyResolver(failures=100), []
    monkeypatch.setattr(opt_ml.socket, "gethostbyname", resolver)
    monkeypatch.setattr(opt_ml.time, "sleep", sleeps.append)
    with pytest.raises(DistributedError) as info:
        resolve_host("algo-9", retries=3, delay_seconds=2)
    assert len(resolver.calls) == 4 and sleeps == [2, 2, 2]
    assert str(info.value).startswith("cannot resolve host 'algo-9' after 4 attempts over 6 s")


def test_resolve_host_real_localhost():
    assert resolve_host("localhost", retries=0).startswith("127.")
