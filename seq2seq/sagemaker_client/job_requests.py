"""The SageMaker API requests of the CLI, as plain dicts (pure functions; no AWS calls here).

Request shapes follow the SageMaker API reference: CreateTrainingJob, CreateModel,
CreateEndpointConfig, CreateEndpoint, CreateTransformJob.
"""

import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from seq2seq import constants
from seq2seq.content_types import JSON, JSONLINES, RECORDIO_PROTOBUF, SAGEMAKER_MODEL, TEXT
from seq2seq.errors import UserError
from seq2seq.training.metrics_log import METRIC_REGEXES

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
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


def check_name(name: str, what: str) -> str:
    """SageMaker names: 1-63 letters, digits and hyphens, starting and ending alphanumeric."""
    if not NAME_PATTERN.match(name or ""):
        raise UserError(f"{what} {name!r} is not a valid SageMaker name: use 1-63 letters, digits and "
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


def training_job_request(spec: TrainingJobSpec) -> dict:
    """The CreateTrainingJob request: three channels, our metric regexes, checkpoints for resume,
    managed spot when asked, every channel FullyReplicated (the job shards the data across hosts)."""
    check_name(spec.name, "training job name")
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
    request = {
        "TrainingJobName": spec.name,
        "AlgorithmSpecification": {
            "TrainingImage": spec.image,
            "TrainingInputMode": spec.input_mode,
            "MetricDefinitions": metric_definitions(),
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "RoleArn": spec.role_arn,
        "HyperParameters": dict(spec.hyperparameters),
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
        request["CheckpointConfig"] = {"S3Uri": spec.checkpoint_s3_uri, "LocalPath": CHECKPOINT_LOCAL_PATH}
    if spec.tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(spec.tags.items())]
    return request


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
