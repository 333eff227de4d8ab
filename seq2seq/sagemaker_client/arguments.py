"""Command-line arguments of `python -m seq2seq.sagemaker_client` (one sub-parser per command)."""

import argparse

from seq2seq.sagemaker_client import job_requests as jr
from seq2seq.sagemaker_client import monitor

COMMON_HELP = "AWS credentials and region come from the environment, ~/.aws, --profile and --region."


def _add_aws(parser) -> None:
    parser.add_argument("--region", help="AWS region (default: from the environment or profile)")
    parser.add_argument("--profile", help="named AWS profile")


def _add_model_source(parser) -> None:
    source = parser.add_argument_group("model", "the trained model, from a training job or given directly")
    source.add_argument("--training-job", help="take model.tar.gz, image and role from this training job")
    source.add_argument("--model-data", help="s3://.../model.tar.gz")
    source.add_argument("--image", help="image URI in ECR (default: the training job's)")
    source.add_argument("--role", help="execution role ARN (default: the training job's)")
    source.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="container environment, e.g. SAGEMAKER_MODEL_SERVER_WORKERS=2 (repeatable)")


def _add_training_definition(p, default_name: str) -> None:
    """The options `submit` and `tune` share: image, role, data, hyperparameters, resources, spot, tags."""
    p.add_argument("--image", required=True, help="image URI in ECR")
    p.add_argument("--role", required=True, help="SageMaker execution role ARN")
    p.add_argument("--job-name", help=f"default: {default_name}-<UTC timestamp>")
    p.add_argument("--data", help="local directory from `recordio_tools prepare` (or with channel subdirectories)")
    p.add_argument("--s3-prefix", help="s3://bucket/prefix for uploaded data, output and checkpoints")
    for channel in ("train", "validation", "vocab"):
        p.add_argument(f"--{channel}", help=f"S3 URI of the {channel} channel (instead of --data)")
    p.add_argument("--model-uri", help="s3://.../model.tar.gz of an earlier job to fine-tune: the `model` channel "
                                       "(application/x-sagemaker-model, File mode)")
    p.add_argument("--embeddings", help="S3 URI (prefix) of embed.src.txt / embed.trg.txt: the `embeddings` channel")
    p.add_argument("--output-path", help="S3 URI for model.tar.gz (default: <s3-prefix>/output)")
    p.add_argument("--hyperparameters", help="JSON file of hyperparameters")
    p.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                   help="one hyperparameter, overriding the file (repeatable)")
    p.add_argument("--instance-type", default="ml.p3.2xlarge")
    p.add_argument("--instance-count", type=int, default=1, help="more than 1 trains on several hosts")
    p.add_argument("--volume-size-gb", type=int, default=30)
    p.add_argument("--max-runtime-s", type=int, default=24 * 3600)
    p.add_argument("--input-mode", default="File", choices=("File", "Pipe", "FastFile"))
    p.add_argument("--spot", action="store_true", help="managed spot training (resumes from checkpoints)")
    p.add_argument("--max-wait-s", type=int, help="spot: total wait, at least --max-runtime-s")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="resource tag (repeatable)")


def _add_submit(commands) -> None:
    p = commands.add_parser("submit", help="create a training job", description=(
        "Create a SageMaker training job running IMAGE train. Data: --data DIR (uploaded to "
        "<s3-prefix>/<job>/data/{train,validation,vocab}/) or S3 URIs for the three channels."))
    _add_training_definition(p, "seq2seq")
    p.add_argument("--checkpoint-s3", help="S3 URI synced with /opt/ml/checkpoints "
                                           "(default: <output-path>/<job>/checkpoints)")
    p.add_argument("--no-checkpoints", action="store_true", help="no CheckpointConfig")
    p.add_argument("--tensorboard-s3", metavar="S3_URI",
                   help="upload the job's TensorBoard event files there while it runs (TensorBoardOutputConfig)")
    p.add_argument("--tensorboard-local-path", default=jr.TENSORBOARD_LOCAL_PATH,
                   help="directory in the container that SageMaker uploads (the job writes its event files there)")
    p.add_argument("--wait", action="store_true", help="follow the logs until the job ends")


def _add_tune(commands) -> None:
    p = commands.add_parser("tune", help="create a hyperparameter tuning job", description=(
        "Create a SageMaker hyperparameter tuning job over the training definition `submit` sends: the "
        "hyperparameters given here are static, the ranges file's are searched. Everything is checked "
        "before the data is uploaded or the job is created."))
    _add_training_definition(p, "seq2seq-tune")
    search = p.add_argument_group("search")
    search.add_argument("--ranges", required=True, metavar="FILE",
                        help="search space, .json or .yaml: {name: {type: continuous|integer|categorical, "
                             "min, max, scaling} or {type: categorical, values: [...]}}")
    search.add_argument("--strategy", default="Bayesian", choices=jr.STRATEGIES)
    search.add_argument("--objective", default="validation:bleu", choices=sorted(jr.OBJECTIVES),
                        help="validation:bleu is maximized (needs bleu_sample_size != 0), "
                             "validation:perplexity minimized")
    search.add_argument("--max-jobs", type=int, default=10, help="training jobs in all")
    search.add_argument("--max-parallel-jobs", type=int, default=1, help="training jobs at a time")
    search.add_argument("--early-stopping", default="Off", choices=jr.EARLY_STOPPING_TYPES,
                        help="Auto: SageMaker stops training jobs unlikely to beat the best (not with Hyperband)")
    search.add_argument("--min-resource", type=int, help="Hyperband: epochs before a job may be stopped")
    search.add_argument("--max-resource", type=int, help="Hyperband: most epochs of a job (default: the static "
                                                         "hyperparameter epochs)")
    search.add_argument("--warm-start-from", metavar="JOB1,JOB2", help="up to 5 earlier tuning jobs to start from")
    search.add_argument("--warm-start-type", default="IdenticalDataAndAlgorithm", choices=jr.WARM_START_TYPES)
    p.add_argument("--checkpoint-s3", help="S3 URI synced with /opt/ml/checkpoints by every training job of the "
                                           "tuning job (default: none)")
    p.add_argument("--wait", action="store_true", help="poll until the tuning job ends, then show the best job")


def _add_deploy(commands) -> None:
    p = commands.add_parser("deploy", help="create model, endpoint config and endpoint")
    _add_model_source(p)
    p.add_argument("--name", help="name of the model, endpoint config and endpoint (default: seq2seq-<time>)")
    p.add_argument("--instance-type", default="ml.m5.xlarge")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--wait", action="store_true", help="wait until the endpoint is in service")


def _add_transform(commands) -> None:
    p = commands.add_parser("transform", help="batch transform of JSON lines", description=(
        'Input lines {"source": "..."}; output lines {"target": "..."} in <output>/<input file>.out.'))
    _add_model_source(p)
    p.add_argument("--model-name", help="an existing SageMaker model (instead of --training-job/--model-data)")
    p.add_argument("--input", required=True, help="S3 URI (prefix) of the .jsonl input files")
    p.add_argument("--output", required=True, help="S3 URI for the results")
    p.add_argument("--job-name", help="default: seq2seq-transform-<time>")
    p.add_argument("--instance-type", default="ml.m5.xlarge")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--max-payload-mb", type=int, default=6)
    p.add_argument("--max-concurrent", type=int, default=1, help="MaxConcurrentTransforms")
    p.add_argument("--wait", action="store_true", help="follow the logs until the job ends")


def _add_monitoring(commands) -> None:
    logs = commands.add_parser("logs", help="print the CloudWatch logs")
    logs.add_argument("name", help="job or endpoint name")
    logs.add_argument("--kind", choices=sorted(k for k, kind in monitor.KINDS.items() if kind.log_group),
                      default="training")
    logs.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    logs.add_argument("--poll-s", type=float, default=15.0, help="seconds between polls with --follow")
    status = commands.add_parser("status", help="show the status (of a tuning job: the best training job)")
    status.add_argument("name", help="job or endpoint name")
    status.add_argument("--kind", choices=sorted(monitor.KINDS), default="training")
    status.add_argument("--wait", action="store_true", help="poll until it ends (or is in service)")
    status.add_argument("--poll-s", type=float, default=15.0, help="seconds between polls with --wait")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seq2seq.sagemaker_client",
                                     description="Train and serve the seq2seq image on Amazon SageMaker.",
                                     epilog=COMMON_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_submit(commands)
    _add_tune(commands)
    _add_deploy(commands)
    _add_transform(commands)
    _add_monitoring(commands)
    for sub in commands.choices.values():
        _add_aws(sub)
    return parser
