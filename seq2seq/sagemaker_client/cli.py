"""`python -m seq2seq.sagemaker_client submit|tune|deploy|transform|logs|status`: run the image on SageMaker.

    submit     upload a prepared data directory (or take S3 URIs) and create a training job
    tune       the same training definition searched by a hyperparameter tuning job (ranges from a file)
    deploy     model + endpoint config + endpoint from a training job or a model.tar.gz
    transform  batch transform of JSON lines ({"source": ...} -> {"target": ...})
    logs       print (or follow) the CloudWatch logs of a job or endpoint
    status     status, failure reason, final metrics and artifacts; of a tuning job: its training jobs
               by status and the best one (--wait polls until it ends)

AWS credentials and region come from the usual places (environment, ~/.aws, --profile, --region).
"""

import json
import sys
import time
from typing import Callable, Dict, List, Optional

from seq2seq.errors import UserError
from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.sagemaker_client import job_requests as jr
from seq2seq.sagemaker_client import monitor
from seq2seq.sagemaker_client.s3_data import join_s3, parse_s3_uri, upload_channels
from seq2seq.search_space import (check_combinations, check_objective_reported, check_static, load_search_space,
                                  value_text)


class AwsClients:
    """boto3 clients made on first use from one session (region and profile as given)."""

    def __init__(self, region: Optional[str] = None, profile: Optional[str] = None):
        self.region, self.profile = region, profile
        self._session, self._clients = None, {}

    def __call__(self, service: str):
        if service not in self._clients:
            if self._session is None:
                import boto3
                self._session = boto3.Session(region_name=self.region, profile_name=self.profile)
            self._clients[service] = self._session.client(service)
        return self._clients[service]


def parse_key_values(pairs: List[str], what: str) -> Dict[str, str]:
    """["a=1", "b=x"] -> {"a": "1", "b": "x"}; UserError naming a malformed entry."""
    result = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{what} {pair!r} is not NAME=VALUE")
        result[key.strip()] = value
    return result


def read_hyperparameters(file_path: Optional[str], pairs: List[str]) -> dict:
    """The file's hyperparameters overridden by --hp pairs, as given (not validated)."""
    values = {}
    if file_path:
        try:
            with open(file_path, encoding="utf-8") as stream:
                values = json.load(stream)
        except (OSError, ValueError) as error:
            raise UserError(f"{file_path}: cannot read hyperparameters ({error})") from None
        if not isinstance(values, dict):
            raise UserError(f"{file_path}: hyperparameters must be a JSON object")
    values.update(parse_key_values(pairs, "--hp"))
    return values


def collect_hyperparameters(file_path: Optional[str], pairs: List[str]) -> Dict[str, str]:
    """The file's hyperparameters overridden by --hp pairs, validated here, sent as strings."""
    values = read_hyperparameters(file_path, pairs)
    parse_hyperparameters(values, source="hyperparameters")  # fail before anything is paid for
    return _as_strings(values)


def _as_strings(values: dict) -> Dict[str, str]:
    """Hyperparameter values as SageMaker passes them: text as it is, numbers and booleans as JSON."""
    return {name: value_text(value) for name, value in values.items()}


def cmd_submit(args, clients, emit, sleep) -> int:
    name = args.job_name or jr.default_name("seq2seq")
    spec = training_spec(args, clients, emit, name, collect_hyperparameters(args.hyperparameters, args.hp),
                         default_checkpoints=True)
    if args.no_checkpoints:
        spec.checkpoint_s3_uri = None
    if args.tensorboard_s3:
        parse_s3_uri(args.tensorboard_s3)
        spec.tensorboard_s3_uri, spec.tensorboard_local_path = args.tensorboard_s3, args.tensorboard_local_path
    answer = clients("sagemaker").create_training_job(**jr.training_job_request(spec))
    emit(f"training job {name} created: {answer['TrainingJobArn']}")
    return _wait_if_asked(args, clients, emit, sleep, "training", name)


def training_spec(args, clients, emit, name: str, hyperparameters: Dict[str, str],
                  default_checkpoints: bool) -> jr.TrainingJobSpec:
    """The training definition of `submit` and `tune` from their shared options: the channels (uploading
    --data to <s3-prefix>/<name>/data/ first), output, resources, spot and checkpoints (--checkpoint-s3, else
    <output>/<name>/checkpoints when `default_checkpoints`)."""
    if args.data:
        if not args.s3_prefix:
            raise UserError("--data needs --s3-prefix (where to upload it)")
        channels = upload_channels(clients("s3"), args.data, join_s3(args.s3_prefix, name, "data"), emit)
    else:
        channels = {"train": args.train, "validation": args.validation, "vocab": args.vocab}
        missing = [f"--{c}" for c, uri in channels.items() if not uri]
        if missing:
            raise UserError(f"give --data DIR, or all of --train --validation --vocab (missing {' '.join(missing)})")
        for uri in channels.values():
            parse_s3_uri(uri)
    for uri in (args.model_uri, args.embeddings, args.checkpoint_s3):
        if uri:
            parse_s3_uri(uri)
    output = args.output_path or (join_s3(args.s3_prefix, "output") if args.s3_prefix else None)
    if not output:
        raise UserError("give --output-path or --s3-prefix")
    checkpoints = args.checkpoint_s3 or (join_s3(output, name, "checkpoints") if default_checkpoints else None)
    return jr.TrainingJobSpec(
        name=name, image=args.image, role_arn=args.role, channels=channels, output_path=output,
        hyperparameters=hyperparameters,
        instance_type=args.instance_type, instance_count=args.instance_count, volume_size_gb=args.volume_size_gb,
        max_runtime_s=args.max_runtime_s, input_mode=args.input_mode, spot=args.spot, max_wait_s=args.max_wait_s,
        checkpoint_s3_uri=checkpoints, tags=parse_key_values(args.tag, "--tag"), model_uri=args.model_uri,
        embeddings_uri=args.embeddings)


def cmd_tune(args, clients, emit, sleep) -> int:
    """Check everything (ranges file, static hyperparameters with the ranges, the tuning constraints) before
    uploading data or creating the tuning job."""
    name = args.job_name or jr.default_name("seq2seq-tune")
    ranges = load_search_space(args.ranges)
    static = read_hyperparameters(args.hyperparameters, args.hp)
    check_static(ranges, static, source="static hyperparameters")
    check_combinations(ranges, static, source=args.ranges)
    check_objective_reported(args.objective, ranges, static, "static hyperparameters")
    tuning = jr.TuningJobSpec(
        name=name, ranges=ranges, objective=args.objective, strategy=args.strategy,
        max_jobs=args.max_jobs, max_parallel_jobs=args.max_parallel_jobs, early_stopping=args.early_stopping,
        warm_start_parents=_names(args.warm_start_from), warm_start_type=args.warm_start_type,
        min_resource=args.min_resource, max_resource=args.max_resource)
    jr.check_tuning(tuning, static)      # before the upload
    # Every training job of a tuning job gets the same CheckpointConfig: only where asked (see the README).
    training = training_spec(args, clients, emit, name, _as_strings(static), default_checkpoints=False)
    answer = clients("sagemaker").create_hyper_parameter_tuning_job(**jr.tuning_job_request(tuning, training))
    emit(f"tuning job {name} created: {answer['HyperParameterTuningJobArn']} ({args.strategy}, "
         f"{jr.OBJECTIVES[args.objective].lower()} {args.objective}, {len(ranges)} ranges, up to {args.max_jobs} "
         f"training jobs, {args.max_parallel_jobs} at a time)")
    return _wait_if_asked(args, clients, emit, sleep, "tuning", name)


def _names(text: Optional[str]) -> List[str]:
    """"a,b, c" -> ["a", "b", "c"]."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _training_job_defaults(args, clients) -> None:
    """Fill --model-data, --image and --role from --training-job's description where not given."""
    if not args.training_job:
        return
    job = clients("sagemaker").describe_training_job(TrainingJobName=args.training_job)
    args.model_data = args.model_data or job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    args.image = args.image or job["AlgorithmSpecification"].get("TrainingImage")
    args.role = args.role or job.get("RoleArn")
    if not args.model_data:
        raise UserError(f"training job {args.training_job} has no model artifacts "
                        f"(status {job.get('TrainingJobStatus')})")


def create_model(args, clients, emit, name: str) -> str:
    _training_job_defaults(args, clients)
    for flag, value in (("--model-data or --training-job", args.model_data), ("--image", args.image),
                        ("--role", args.role)):
        if not value:
            raise UserError(f"missing {flag}")
    parse_s3_uri(args.model_data)
    request = jr.model_request(name, args.image, args.model_data, args.role, parse_key_values(args.env, "--env"))
    clients("sagemaker").create_model(**request)
    emit(f"model {name} created from {args.model_data}")
    return name


def cmd_deploy(args, clients, emit, sleep) -> int:
    name = args.name or jr.default_name("seq2seq")
    sagemaker = clients("sagemaker")
    create_model(args, clients, emit, name)
    sagemaker.create_endpoint_config(**jr.endpoint_config_request(name, name, args.instance_type,
                                                                  args.instance_count))
    emit(f"endpoint config {name} created ({args.instance_count} x {args.instance_type})")
    answer = sagemaker.create_endpoint(**jr.endpoint_request(name, name))
    emit(f"endpoint {name} creating: {answer['EndpointArn']}")
    return _wait_if_asked(args, clients, emit, sleep, "endpoint", name)


def cmd_transform(args, clients, emit, sleep) -> int:
    name = args.job_name or jr.default_name("seq2seq-transform")
    model = args.model_name or create_model(args, clients, emit, name)
    parse_s3_uri(args.input)
    parse_s3_uri(args.output)
    request = jr.transform_job_request(name, model, args.input, args.output, args.instance_type,
                                       args.instance_count, args.max_payload_mb, args.max_concurrent)
    answer = clients("sagemaker").create_transform_job(**request)
    emit(f"transform job {name} created: {answer['TransformJobArn']}")
    return _wait_if_asked(args, clients, emit, sleep, "transform", name)


def cmd_logs(args, clients, emit, sleep) -> int:
    description = monitor.follow(clients("sagemaker"), clients("logs"), args.kind, args.name, emit,
                                 poll_s=args.poll_s, sleep=sleep, wait=args.follow)
    return _exit_code(args.kind, description)


def cmd_status(args, clients, emit, sleep) -> int:
    if args.wait:
        description = monitor.watch(clients("sagemaker"), args.kind, args.name, emit, poll_s=args.poll_s, sleep=sleep)
    else:
        description = monitor.describe(clients("sagemaker"), args.kind, args.name)
    for line in monitor.status_lines(args.kind, description):
        emit(line)
    return _exit_code(args.kind, description)


def _wait_if_asked(args, clients, emit, sleep, kind: str, name: str) -> int:
    if not args.wait:
        if monitor.KINDS[kind].log_group:
            emit(f"follow it with: python -m seq2seq.sagemaker_client logs {name} --kind {kind} --follow")
        else:
            emit(f"follow it with: python -m seq2seq.sagemaker_client status {name} --kind {kind} --wait")
        return 0
    if monitor.KINDS[kind].log_group:
        description = monitor.follow(clients("sagemaker"), clients("logs"), kind, name, emit, sleep=sleep)
    else:
        description = monitor.watch(clients("sagemaker"), kind, name, emit, sleep=sleep)
    for line in monitor.status_lines(kind, description):
        emit(line)
    return _exit_code(kind, description)


def _exit_code(kind: str, description: dict) -> int:
    """1 for a failed job or endpoint, and for a finished tuning job without a best training job."""
    status = description.get(monitor.KINDS[kind].status_key)
    if status in ("Failed", "OutOfService"):
        return 1
    if kind == "tuning" and status in monitor.TERMINAL_STATES and not description.get("BestTrainingJob"):
        return 1
    return 0


COMMANDS = {"submit": cmd_submit, "tune": cmd_tune, "deploy": cmd_deploy, "transform": cmd_transform, "logs": cmd_logs,
            "status": cmd_status}


def main(argv: List[str] = None, clients: Callable = None, emit: Callable[[str], None] = print,
         sleep: Callable[[float], None] = time.sleep) -> int:
    """Exit codes: 0 done, 1 AWS error or failed job, 2 invalid arguments."""
    from botocore.exceptions import BotoCoreError, ClientError
    from seq2seq.sagemaker_client.arguments import build_parser

    args = build_parser().parse_args(argv)
    clients = clients or AwsClients(args.region, args.profile)
    try:
        return COMMANDS[args.command](args, clients, emit, sleep)
    except UserError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    except ClientError as error:
        details = error.response.get("Error", {})
        print(f"AWS error ({details.get('Code', 'unknown')}): {details.get('Message', error)}", file=sys.stderr)
        return 1
    except BotoCoreError as error:
        print(f"AWS error: {error}", file=sys.stderr)
        return 1
