"""The SageMaker API requests of the CLI, as plain dicts (pure functions; no AWS calls here).

Request shapes follow the SageMaker API reference: CreateTrainingJob, CreateHyperParameterTuningJob,
CreateModel, CreateEndpointConfig, CreateEndpoint, CreateTransformJob.
"""

import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from seq2seq import constants
from seq2seq.content_types import JSON, JSONLINES, RECORDIO_PROTOBUF, SAGEMAKER_MODEL, TEXT
from seq2seq.errors import UserError
from seq2seq.search_space import value_text
from seq2seq.training.metrics_log import METRIC_REGEXES

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
TENSORBOARD_LOCAL_PATH = "/opt/ml/output/tensorboard"   # where the job writes event files without a config file
NAME_MAX_LENGTH = 63
TUNING_NAME_MAX_LENGTH = 32                             # a tuning job's name is shorter than other names
CHANNEL_CONTENT_TYPES = {
    constants.TRAIN_CHANNEL: RECORDIO_PROTOBUF,
    constants.VALIDATION_CHANNEL: RECORDIO_PROTOBUF,
    constants.VOCAB_CHANNEL: JSON,
}
# Optional channels, always in File mode (a model archive and text files are read whole).
OPTIONAL_CHANNEL_CONTENT_TYPES = {
    constants.MODEL_CHANNEL: SAGEMAKER_MODEL,       # incremental training: the previous job's model.tar.gz
    constants.EMBEDDINGS_CHANNEL: TEXT,             # embed.src.txt / embed.trg.txt
}


def metric_definitions() -> List[Dict[str, str]]:
    """MetricDefinitions for our `#quality_metric:` log lines (validation:bleu, ..., train:perplexity)."""
    return [{"Name": name, "Regex": regex} for name, regex in METRIC_REGEXES.items()]


def default_name(prefix: str = "seq2seq", now: float = None) -> str:
    """`prefix-YYYYmmdd-HHMMSS` in UTC, a valid SageMaker resource name."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}"


def check_name(name: str, what: str, max_length: int = NAME_MAX_LENGTH) -> str:
    """SageMaker names: 1-63 (tuning jobs: 1-32) letters, digits and hyphens, starting and ending alphanumeric."""
    if not (re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name or "") and len(name) <= max_length):
        raise UserError(f"{what} {name!r} is not a valid SageMaker name: use 1-{max_length} letters, digits and "
                        f"hyphens, starting and ending with a letter or digit")
    return name


@dataclass
class TrainingJobSpec:
    """What `submit` needs to create a training job."""

    name: str
    image: str
    role_arn: str
    channels: Dict[str, str]                 # channel -> S3 URI (train, validation, vocab)
    output_path: str                         # S3 URI for model.tar.gz
    hyperparameters: Dict[str, str]          # already strings
    instance_type: str = "ml.p3.2xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_s: int = 24 * 3600
    input_mode: str = "File"
    spot: bool = False
    max_wait_s: Optional[int] = None
    checkpoint_s3_uri: Optional[str] = None
    tags: Dict[str, str] = field(default_factory=dict)
    model_uri: Optional[str] = None          # s3://.../model.tar.gz to fine-tune (the `model` channel)
    embeddings_uri: Optional[str] = None     # S3 prefix of embed.src.txt / embed.trg.txt (the `embeddings` channel)
    tensorboard_s3_uri: Optional[str] = None  # where SageMaker uploads the event files (TensorBoardOutputConfig)
    tensorboard_local_path: str = TENSORBOARD_LOCAL_PATH


def training_job_request(spec: TrainingJobSpec) -> dict:
    """The CreateTrainingJob request: three channels, our metric regexes, checkpoints for resume,
    managed spot when asked, every channel FullyReplicated (the job shards the data across hosts),
    TensorBoard event files uploaded when asked."""
    check_name(spec.name, "training job name")
    definition = training_definition(spec)
    request = {
        "TrainingJobName": spec.name,
        "AlgorithmSpecification": dict(definition.pop("AlgorithmSpecification"), EnableSageMakerMetricsTimeSeries=True),
        "RoleArn": definition.pop("RoleArn"),
        "HyperParameters": dict(spec.hyperparameters),
        **definition,
    }
    if spec.tensorboard_s3_uri:
        request["TensorBoardOutputConfig"] = {"S3OutputPath": spec.tensorboard_s3_uri,
                                              "LocalPath": spec.tensorboard_local_path}
    if spec.tags:
        request["Tags"] = _tags(spec.tags)
    return request


def training_definition(spec: TrainingJobSpec) -> dict:
    """The parts a training job and a tuning job's training definition share (everything but the name,
    hyperparameters, tags and TensorBoard): image and metric regexes, role, channels, output, resources,
    stopping condition, managed spot, checkpoints."""
    missing = [c for c in CHANNEL_CONTENT_TYPES if c not in spec.channels]
    if missing:
        raise UserError(f"missing S3 data for channel(s): {', '.join(missing)}")
    if spec.instance_count < 1:
        raise UserError(f"instance count must be at least 1, got {spec.instance_count}")
    if spec.input_mode not in ("File", "Pipe", "FastFile"):
        raise UserError(f"input mode must be File, Pipe or FastFile, got {spec.input_mode!r}")
    stopping = {"MaxRuntimeInSeconds": spec.max_runtime_s}
    if spec.spot:
        wait = spec.max_wait_s or spec.max_runtime_s
        if wait < spec.max_runtime_s:
            raise UserError(f"--max-wait-s ({wait}) must be at least --max-runtime-s ({spec.max_runtime_s})")
        stopping["MaxWaitTimeInSeconds"] = wait
    definition = {
        "AlgorithmSpecification": {
            "TrainingImage": spec.image,
            "TrainingInputMode": spec.input_mode,
            "MetricDefinitions": metric_definitions(),
        },
        "RoleArn": spec.role_arn,
        "InputDataConfig": [_channel(name, spec.channels[name]) for name in CHANNEL_CONTENT_TYPES] + [
            _channel(name, uri, OPTIONAL_CHANNEL_CONTENT_TYPES[name], "File")
            for name, uri in ((constants.MODEL_CHANNEL, spec.model_uri),
                              (constants.EMBEDDINGS_CHANNEL, spec.embeddings_uri)) if uri],
        "OutputDataConfig": {"S3OutputPath": spec.output_path},
        "ResourceConfig": {"InstanceType": spec.instance_type, "InstanceCount": spec.instance_count,
                           "VolumeSizeInGB": spec.volume_size_gb},
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": spec.spot,
    }
    if spec.checkpoint_s3_uri:
        definition["CheckpointConfig"] = {"S3Uri": spec.checkpoint_s3_uri, "LocalPath": CHECKPOINT_LOCAL_PATH}
    return definition


def _tags(tags: Dict[str, str]) -> List[Dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


# --- hyperparameter tuning jobs -------------------------------------------------------------

OBJECTIVES = {"validation:bleu": "Maximize", "validation:perplexity": "Minimize"}  # metric name -> direction
STRATEGIES = ("Bayesian", "Random", "Hyperband")
EARLY_STOPPING_TYPES = ("Off", "Auto")
WARM_START_TYPES = ("IdenticalDataAndAlgorithm", "TransferLearning")
MAX_WARM_START_PARENTS = 5
HYPERBAND_MAX_RESOURCE = 20000
# The static hyperparameters from which Hyperband reads MaxResource when it is not given (the gate accepts
# `epochs`, another name of max_num_epochs).
HYPERBAND_EPOCH_NAMES = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
MAX_RANGES_PER_TYPE = 30
SCALING_TYPES = {"auto": "Auto", "linear": "Linear", "logarithmic": "Logarithmic",
                 "reverse_logarithmic": "ReverseLogarithmic"}
RANGE_LISTS = {"continuous": "ContinuousParameterRanges", "integer": "IntegerParameterRanges",
               "categorical": "CategoricalParameterRanges"}


@dataclass
class TuningJobSpec:
    """What `tune` needs besides the training definition: the search.

    `ranges` are seq2seq.search_space.ParameterRange values (name, kind, low, high, values, scaling)."""

    name: str
    ranges: list
    objective: str = "validation:bleu"
    strategy: str = "Bayesian"
    max_jobs: int = 10
    max_parallel_jobs: int = 1
    early_stopping: str = "Off"
    warm_start_parents: List[str] = field(default_factory=list)
    warm_start_type: str = "IdenticalDataAndAlgorithm"
    min_resource: Optional[int] = None        # Hyperband only
    max_resource: Optional[int] = None        # Hyperband only; else read from a static `epochs`


def tuning_job_request(spec: TuningJobSpec, training: TrainingJobSpec) -> dict:
    """The CreateHyperParameterTuningJob request: the search (strategy, objective, limits, ranges, early
    stopping, warm start) over the training definition `submit` sends, `training.hyperparameters` as the
    static ones and `training.tags` as the tuning job's. Every constraint of the service that can be checked
    here is a UserError before any request."""
    check_tuning(spec, training.hyperparameters)
    if training.tensorboard_s3_uri:
        raise UserError("a tuning job's training definition has no TensorBoardOutputConfig (SageMaker's API); "
                        "submit single training jobs for TensorBoard uploads")
    definition = training_definition(training)
    definition["StaticHyperParameters"] = dict(training.hyperparameters)
    config = {
        "Strategy": spec.strategy,
        "HyperParameterTuningJobObjective": {"Type": OBJECTIVES[spec.objective], "MetricName": spec.objective},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": spec.max_jobs,
                           "MaxParallelTrainingJobs": spec.max_parallel_jobs},
        "ParameterRanges": parameter_ranges(spec.ranges),
        "TrainingJobEarlyStoppingType": spec.early_stopping,
    }
    if spec.strategy == "Hyperband":
        hyperband = {key: value for key, value in (("MinResource", spec.min_resource),
                                                    ("MaxResource", spec.max_resource)) if value is not None}
        config["StrategyConfig"] = {"HyperbandStrategyConfig": hyperband}
    request = {"HyperParameterTuningJobName": spec.name, "HyperParameterTuningJobConfig": config,
               "TrainingJobDefinition": definition}
    if spec.warm_start_parents:
        request["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": parent}
                                               for parent in spec.warm_start_parents],
            "WarmStartType": spec.warm_start_type}
    if training.tags:
        request["Tags"] = _tags(training.tags)
    return request


def check_tuning(spec: TuningJobSpec, static_hyperparameters: Dict[str, str]) -> None:
    """The tuning job's constraints (SageMaker's API reference), each a one-line UserError."""
    check_name(spec.name, "tuning job name", TUNING_NAME_MAX_LENGTH)
    _check_choice(spec.strategy, STRATEGIES, "strategy")
    _check_choice(spec.objective, tuple(OBJECTIVES), "objective")
    _check_choice(spec.early_stopping, EARLY_STOPPING_TYPES, "early stopping type")
    if spec.objective not in {definition["Name"] for definition in metric_definitions()}:
        raise UserError(f"objective {spec.objective} has no metric definition")
    if spec.max_jobs < 1 or spec.max_parallel_jobs < 1:
        raise UserError(f"--max-jobs ({spec.max_jobs}) and --max-parallel-jobs ({spec.max_parallel_jobs}) "
                        f"must be at least 1")
    if spec.max_parallel_jobs > spec.max_jobs:
        raise UserError(f"--max-parallel-jobs ({spec.max_parallel_jobs}) must not exceed --max-jobs "
                        f"({spec.max_jobs})")
    if not spec.ranges:
        raise UserError("a tuning job needs at least one hyperparameter range")
    _check_hyperband(spec, static_hyperparameters)
    _check_warm_start(spec)


def _check_choice(value: str, allowed: tuple, what: str) -> None:
    if value not in allowed:
        raise UserError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def _check_hyperband(spec: TuningJobSpec, static_hyperparameters: Dict[str, str]) -> None:
    if spec.strategy != "Hyperband":
        if spec.min_resource is not None or spec.max_resource is not None:
            raise UserError(f"--min-resource and --max-resource are for --strategy Hyperband, not {spec.strategy}")
        return
    if spec.early_stopping != "Off":
        raise UserError("--strategy Hyperband stops poor training jobs itself: --early-stopping must be Off")
    for flag, value in (("--min-resource", spec.min_resource), ("--max-resource", spec.max_resource)):
        if value is not None and not 1 <= value <= HYPERBAND_MAX_RESOURCE:
            raise UserError(f"{flag} must be 1..{HYPERBAND_MAX_RESOURCE} (epochs), got {value}")
    if spec.min_resource is not None and spec.max_resource is not None and spec.min_resource > spec.max_resource:
        raise UserError(f"--min-resource ({spec.min_resource}) must not exceed --max-resource ({spec.max_resource})")
    if spec.max_resource is None and not any(name in static_hyperparameters for name in HYPERBAND_EPOCH_NAMES):
        raise UserError("--strategy Hyperband needs its epoch budget: give --max-resource N, or the static "
                        "hyperparameter epochs=N (another name of max_num_epochs, the name Hyperband reads)")


def _check_warm_start(spec: TuningJobSpec) -> None:
    if not spec.warm_start_parents:
        return
    if len(spec.warm_start_parents) > MAX_WARM_START_PARENTS:
        raise UserError(f"--warm-start-from names {len(spec.warm_start_parents)} tuning jobs; at most "
                        f"{MAX_WARM_START_PARENTS} are allowed")
    for parent in spec.warm_start_parents:
        check_name(parent, "--warm-start-from tuning job", TUNING_NAME_MAX_LENGTH)
    _check_choice(spec.warm_start_type, WARM_START_TYPES, "warm start type")


def parameter_ranges(ranges: list) -> dict:
    """ParameterRanges from search_space.ParameterRange values: bounds and categorical values as strings,
    scaling as SageMaker's ScalingType; the three lists always present (empty when unused)."""
    lists = {key: [] for key in RANGE_LISTS.values()}
    for parameter_range in ranges:
        entry = {"Name": parameter_range.name}
        if parameter_range.kind == "categorical":
            entry["Values"] = [str(value) for value in parameter_range.values]
            if len(entry["Values"]) > MAX_RANGES_PER_TYPE:
                raise UserError(f"range '{parameter_range.name}' has {len(entry['Values'])} values: SageMaker "
                                f"takes at most {MAX_RANGES_PER_TYPE}")
        else:
            entry.update(MinValue=value_text(parameter_range.low), MaxValue=value_text(parameter_range.high),
                         ScalingType=SCALING_TYPES[parameter_range.scaling])
        lists[RANGE_LISTS[parameter_range.kind]].append(entry)
    for key, entries in lists.items():
        if len(entries) > MAX_RANGES_PER_TYPE:
            raise UserError(f"{len(entries)} {key}: SageMaker takes at most {MAX_RANGES_PER_TYPE}")
    return lists


def _channel(name: str, s3_uri: str, content_type: Optional[str] = None, input_mode: Optional[str] = None) -> dict:
    """One InputDataConfig entry; `input_mode` overrides the job's TrainingInputMode for this channel."""
    channel = {
        "ChannelName": name,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": s3_uri,
                                        "S3DataDistributionType": "FullyReplicated"}},
        "ContentType": content_type or CHANNEL_CONTENT_TYPES[name],
        "CompressionType": "None",
        "RecordWrapperType": "None",
    }
    if input_mode:
        channel["InputMode"] = input_mode
    return channel


def model_request(name: str, image: str, model_data_url: str, role_arn: str,
                  environment: Dict[str, str] = None) -> dict:
    """CreateModel: our image serving model.tar.gz (unpacked into /opt/ml/model by SageMaker)."""
    container = {"Image": image, "ModelDataUrl": model_data_url}
    if environment:
        container["Environment"] = dict(environment)
    return {"ModelName": check_name(name, "model name"), "PrimaryContainer": container,
            "ExecutionRoleArn": role_arn}


def endpoint_config_request(name: str, model_name: str, instance_type: str, instance_count: int = 1) -> dict:
    """CreateEndpointConfig with one production variant taking all traffic."""
    if instance_count < 1:
        raise UserError(f"instance count must be at least 1, got {instance_count}")
    return {
        "EndpointConfigName": check_name(name, "endpoint config name"),
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": model_name,
                                "InitialInstanceCount": instance_count, "InstanceType": instance_type,
                                "InitialVariantWeight": 1.0}],
    }


def endpoint_request(name: str, config_name: str) -> dict:
    """CreateEndpoint."""
    return {"EndpointName": check_name(name, "endpoint name"), "EndpointConfigName": config_name}


def transform_job_request(name: str, model_name: str, input_uri: str, output_uri: str, instance_type: str,
                          instance_count: int = 1, max_payload_mb: int = 6,
                          max_concurrent_transforms: int = 1) -> dict:
    """CreateTransformJob for JSON lines: `{"source": ...}` lines in, `{"target": ...}` lines out,
    split and assembled by line, several lines per request (MultiRecord)."""
    if not 1 <= max_payload_mb <= 100:
        raise UserError(f"max payload must be 1..100 MB (the endpoint does not stream), got {max_payload_mb}")
    return {
        "TransformJobName": check_name(name, "transform job name"),
        "ModelName": model_name,
        "MaxConcurrentTransforms": max_concurrent_transforms,
        "MaxPayloadInMB": max_payload_mb,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": JSONLINES,
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": JSONLINES, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
    }
