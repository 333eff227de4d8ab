"""SageMaker's /opt/ml contract: where things are, and readers for the input configuration files.

Nothing here touches the file system at import time. `SAGEMAKER_BASE_DIR` relocates `/opt/ml`
(local runs and tests); it is read when a `SageMakerPaths` is created.
"""

import json
import os
import socket
import stat
import time
from dataclasses import dataclass, field
from typing import Optional

from seq2seq import constants
from seq2seq.errors import DistributedError, UserError

DEFAULT_BASE_DIR = "/opt/ml"
BASE_DIR_VARIABLE = "SAGEMAKER_BASE_DIR"
RECORD_SUFFIX = ".rec"
INPUT_MODES = ("File", "Pipe")
DEFAULT_HOST = "algo-1"
DEFAULT_INTERFACE = "eth0"


def _base_dir_from_environment() -> str:
    return os.environ.get(BASE_DIR_VARIABLE, DEFAULT_BASE_DIR)


def _under(parent: str, *parts: str, doc: Optional[str] = None) -> property:
    """A read-only path property: os.path.join(self.<parent>, *parts)."""
    return property(lambda self: os.path.join(getattr(self, parent), *parts), doc=doc)


@dataclass(frozen=True)
class SageMakerPaths:
    """Paths of the SageMaker container layout under `base_dir` (default: $SAGEMAKER_BASE_DIR or /opt/ml)."""

    base_dir: str = field(default_factory=_base_dir_from_environment)

    input_config_dir = _under("base_dir", "input", "config")
    hyperparameters_file = _under("input_config_dir", "hyperparameters.json")
    inputdataconfig_file = _under("input_config_dir", "inputdataconfig.json")
    resourceconfig_file = _under("input_config_dir", "resourceconfig.json")
    data_dir = _under("base_dir", "input", "data")
    model_dir = _under("base_dir", "model")
    output_dir = _under("base_dir", "output")
    output_data_dir = _under("output_dir", "data")
    failure_file = _under("output_dir", constants.FAILURE_FILE)
    success_file = _under("output_dir", constants.SUCCESS_FILE)
    checkpointconfig_file = _under("input_config_dir", "checkpointconfig.json")
    default_checkpoint_dir = _under("base_dir", "checkpoints",
                                    doc="SageMaker's default CheckpointConfig.LocalPath.")
    tensorboardoutputconfig_file = _under("input_config_dir", "tensorboardoutputconfig.json")
    default_tensorboard_dir = _under("output_dir", "tensorboard",
                                     doc="SageMaker's default TensorBoardOutputConfig.LocalPath.")

    @property
    def checkpoint_dir(self) -> str:
        """Where the training state goes (synced to S3 and restored on restart): checkpointconfig.json's
        `LocalPath` when the file is there, else <base_dir>/checkpoints. See `read_checkpoint_dir`."""
        return read_checkpoint_dir(self)

    @property
    def tensorboard_dir(self) -> str:
        """Where TensorBoard event files go (synced to S3 while the job runs): tensorboardoutputconfig.json's
        `LocalPath` when the file is there, else <base_dir>/output/tensorboard. See `read_tensorboard_dir`."""
        return read_tensorboard_dir(self)

    def channel_dir(self, channel: str) -> str:
        """File-mode directory of a channel: <data_dir>/<channel>."""
        return os.path.join(self.data_dir, channel)

    def pipe_path(self, channel: str, epoch: int) -> str:
        """Pipe-mode FIFO of a channel for one epoch (0-based): <data_dir>/<channel>_<epoch>."""
        return os.path.join(self.data_dir, f"{channel}_{epoch}")


def read_checkpoint_dir(paths: "SageMakerPaths") -> str:
    """The checkpoint directory: `LocalPath` of /opt/ml/input/config/checkpointconfig.json, or the default.

    SageMaker writes that file when the job has a CheckpointConfig. A LocalPath under /opt/ml is taken relative to
    `paths.base_dir`, so that a tree relocated with SAGEMAKER_BASE_DIR keeps its checkpoints inside it. UserError
    naming the file when it is not a JSON object or LocalPath is not an absolute path.
    """
    return _configured_local_path(paths, paths.checkpointconfig_file, "the checkpoint configuration",
                                  paths.default_checkpoint_dir)


def read_tensorboard_dir(paths: "SageMakerPaths") -> str:
    """The TensorBoard event directory: `LocalPath` of /opt/ml/input/config/tensorboardoutputconfig.json (written
    by SageMaker for a job with a TensorBoardOutputConfig), or <base_dir>/output/tensorboard. The same rules as
    `read_checkpoint_dir`."""
    return _configured_local_path(paths, paths.tensorboardoutputconfig_file, "the TensorBoard output configuration",
                                  paths.default_tensorboard_dir)


def _configured_local_path(paths: "SageMakerPaths", path: str, what: str, default: str) -> str:
    """`LocalPath` of the JSON object in `path` (an /opt/ml path relocated under `paths.base_dir`); `default` when
    the file or the key is absent; UserError naming the file otherwise."""
    if not os.path.exists(path):
        return default
    raw = _read_json(path, what)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a JSON object with LocalPath, got {json.dumps(raw)}")
    local = raw.get("LocalPath")
    if local is None:
        return default
    if not isinstance(local, str) or not os.path.isabs(local):
        raise UserError(f"{path}: LocalPath must be an absolute directory path, got {json.dumps(local)}")
    local = os.path.normpath(local)
    if local.startswith(DEFAULT_BASE_DIR + os.sep):
        return os.path.join(paths.base_dir, os.path.relpath(local, DEFAULT_BASE_DIR))
    return local


@dataclass(frozen=True)
class ChannelConfig:
    """One channel of inputdataconfig.json."""

    name: str
    input_mode: str = "File"                       # "File" or "Pipe" (FastFile is reported as File)
    content_type: Optional[str] = None
    s3_distribution_type: str = "FullyReplicated"  # or "ShardedByS3Key"
    record_wrapper_type: str = "None"              # or "RecordIO"

    @property
    def is_pipe(self) -> bool:
        return self.input_mode == "Pipe"


def _read_json(path: str, what: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: {what} is not valid JSON ({exc})") from exc
    except OSError as exc:
        raise UserError(f"{path}: {what} cannot be read ({exc.strerror})") from exc


def _channel_config(path: str, name: str, entry) -> ChannelConfig:
    if not isinstance(entry, dict):
        raise UserError(f"{path}: channel '{name}' must be a JSON object, got {json.dumps(entry)}")
    mode = entry.get("TrainingInputMode", "File")
    mode = "File" if mode == "FastFile" else mode
    if mode not in INPUT_MODES:
        raise UserError(f"{path}: channel '{name}' has TrainingInputMode {json.dumps(mode)}; "
                        f"allowed: File, FastFile, Pipe")
    return ChannelConfig(name=name, input_mode=mode, content_type=entry.get("ContentType"),
                         s3_distribution_type=entry.get("S3DistributionType", "FullyReplicated"),
                         record_wrapper_type=entry.get("RecordWrapperType", "None"))


def read_input_data_config(paths: SageMakerPaths) -> dict:
    """Channels by name from inputdataconfig.json: `{name: ChannelConfig}`.

    Without the file (local runs), every directory under data_dir is a File-mode channel.
    """
    path = paths.inputdataconfig_file
    if not os.path.exists(path):
        if not os.path.isdir(paths.data_dir):
            return {}
        return {name: ChannelConfig(name) for name in sorted(os.listdir(paths.data_dir))
                if os.path.isdir(paths.channel_dir(name))}
    raw = _read_json(path, "the input data configuration")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a JSON object of channels, got {type(raw).__name__}")
    return {name: _channel_config(path, name, entry) for name, entry in raw.items()}


@dataclass(frozen=True)
class RecordSource:
    """Where one channel's records come from: a .rec file (File mode) or a FIFO (Pipe mode)."""

    path: str
    is_pipe: bool = False


def _channel_config_for(paths: SageMakerPaths, channel: str, configs: Optional[dict]) -> ChannelConfig:
    configs = read_input_data_config(paths) if configs is None else configs
    return configs.get(channel, ChannelConfig(channel))


def list_record_files(directory: str) -> list:
    """Every *.rec file under `directory` (recursively), sorted by path relative to it."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        found += [os.path.join(root, name) for name in files if name.endswith(RECORD_SUFFIX)]
    return sorted(found, key=lambda path: os.path.relpath(path, directory))


def channel_record_sources(paths: SageMakerPaths, channel: str, epoch: int = 0, configs: dict = None,
                           pipe_timeout_seconds: float = 300.0) -> list:
    """The record sources of `channel` for one epoch (0-based), as a list of `RecordSource`.

    File mode: every .rec file in <data_dir>/<channel>/, sorted; UserError if the directory is
    missing or holds no non-empty .rec file. Pipe mode: the FIFO <data_dir>/<channel>_<epoch>,
    waited for up to `pipe_timeout_seconds`. `configs` defaults to `read_input_data_config(paths)`.
    """
    config = _channel_config_for(paths, channel, configs)
    if config.record_wrapper_type not in ("None", None):
        raise UserError(f"channel '{channel}' has RecordWrapperType {json.dumps(config.record_wrapper_type)}; "
                        "the .rec files are RecordIO-protobuf already, so it must be \"None\"")
    if config.is_pipe:
        return [RecordSource(wait_for_pipe(paths.pipe_path(channel, epoch), channel, pipe_timeout_seconds), True)]
    directory = paths.channel_dir(channel)
    if not os.path.isdir(directory):
        raise UserError(f"channel '{channel}': directory {directory} does not exist; "
                        f"the job needs a '{channel}' channel of .rec files")
    files = list_record_files(directory)
    if not files:
        raise UserError(f"channel '{channel}': no {RECORD_SUFFIX} file in {directory}")
    if all(os.path.getsize(path) == 0 for path in files):
        raise UserError(f"channel '{channel}': every {RECORD_SUFFIX} file in {directory} is empty "
                        f"({', '.join(os.path.basename(p) for p in files)})")
    return [RecordSource(path) for path in files]


def wait_for_pipe(path: str, channel: str, timeout_seconds: float, poll_seconds: float = 0.1) -> str:
    """Wait until the Pipe-mode FIFO `path` exists; UserError naming it after `timeout_seconds`."""
    deadline = time.monotonic() + timeout_seconds
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise UserError(f"channel '{channel}' is in Pipe mode but its FIFO {path} did not appear "
                            f"within {timeout_seconds:g} s")
        time.sleep(poll_seconds)
    if not stat.S_ISFIFO(os.stat(path).st_mode) and not os.path.isfile(path):
        raise UserError(f"channel '{channel}': {path} is neither a FIFO nor a file")
    return path


def vocab_files(paths: SageMakerPaths, configs: dict = None) -> tuple:
    """(source, target) vocabulary files of the vocab channel; UserError naming what is missing."""
    channel = constants.VOCAB_CHANNEL
    if _channel_config_for(paths, channel, configs).is_pipe:
        raise UserError(f"channel '{channel}' must use File mode: its two JSON files cannot be told apart "
                        "in a Pipe-mode stream")
    directory = paths.channel_dir(channel)
    if not os.path.isdir(directory):
        raise UserError(f"channel '{channel}': directory {directory} does not exist; the job needs a "
                        f"'{channel}' channel with {constants.VOCAB_SOURCE_FILE} and {constants.VOCAB_TARGET_FILE}")
    found = []
    for name in (constants.VOCAB_SOURCE_FILE, constants.VOCAB_TARGET_FILE):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            present = ", ".join(sorted(os.listdir(directory))) or "nothing"
            raise UserError(f"channel '{channel}': {name} is missing from {directory} (it holds: {present})")
        found.append(path)
    return tuple(found)


@dataclass(frozen=True)
class ResourceConfig:
    """The hosts of the training job from resourceconfig.json; `hosts` sorted, host 0 is the master."""

    current_host: str = DEFAULT_HOST
    hosts: tuple = (DEFAULT_HOST,)
    network_interface_name: str = DEFAULT_INTERFACE

    @property
    def host_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def is_master(self) -> bool:
        return self.host_rank == 0

    @property
    def num_hosts(self) -> int:
        return len(self.hosts)

    @property
    def master_host(self) -> str:
        return self.hosts[0]


def read_resource_config(paths: SageMakerPaths) -> ResourceConfig:
    """Read resourceconfig.json; without it, a single host 'algo-1'."""
    path = paths.resourceconfig_file
    if not os.path.exists(path):
        return ResourceConfig()
    raw = _read_json(path, "the resource configuration")
    hosts = raw.get("hosts") if isinstance(raw, dict) else None
    current = raw.get("current_host") if isinstance(raw, dict) else None
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise UserError(f"{path}: 'hosts' must be a non-empty list of host names, got {json.dumps(hosts)}")
    if len(set(hosts)) != len(hosts):
        raise UserError(f"{path}: 'hosts' lists a host twice: {json.dumps(hosts)}")
    if current not in hosts:
        raise UserError(f"{path}: 'current_host' {json.dumps(current)} is not one of the hosts {json.dumps(hosts)}")
    interface = raw.get("network_interface_name") or DEFAULT_INTERFACE
    return ResourceConfig(current_host=current, hosts=tuple(sorted(hosts)), network_interface_name=interface)


def resolve_host(name: str, retries: int = 30, delay_seconds: float = 1.0) -> str:
    """IPv4 address of `name`, trying `retries` more times `delay_seconds` apart if DNS is not ready yet.

    Raises DistributedError naming the host after the last failed attempt.
    """
    last_error = None
    for attempt in range(retries + 1):
        try:
            return socket.gethostbyname(name)
        except OSError as exc:
            last_error = exc
            if attempt < retries:
                time.sleep(delay_seconds)
    raise DistributedError(f"cannot resolve host '{name}' after {retries + 1} attempts "
                           f"over {retries * delay_seconds:g} s: {last_error}")
