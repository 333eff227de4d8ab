"""`python -m seq2seq.sagemaker_client submit|deploy|transform|logs|status`: run the image on SageMaker.

    submit     upload a prepared data directory (or take S3 URIs) and create a training job
    deploy     model + endpoint config + endpoint from a training job or a model.tar.gz
    transform  batch transform of JSON lines ({"source": ...} -> {"target": ...})
    logs       print (or follow) the CloudWatch logs of a job or endpoint
    status     status, failure reason, final metrics and artifacts

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


def collect_hyperparameters(file_path: Optional[str], pairs: List[str]) -> Dict[str, str]:
    """The file's hyperparameters overridden by --hp pairs, validated here, sent as strings."""
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
    parse_hyperparameters(values, source="hyperparameters")  # fail before anything is paid for
    return {name: _as_string(value) for name, value in values.items()}


def _as_string(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def cmd_submit(args, clients, emit, sleep) -> int:
    name = args.job_name or jr.default_name("seq2seq")
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
    for uri in (args.model_uri, args.embeddings):
        if uri:
            parse_s3_uri(uri)
    output = args.output_path or (join_s3(args.s3_prefix, "output") if args.s3_prefix else None)
    if not output:
        raise UserError("give --output-path or --s3-prefix")
    checkpoints = None if args.no_checkpoints else (args.checkpoint_s3 or join_s3(output, name, "checkpoints"))
    spec = jr.TrainingJobSpec(
        name=name, image=args.image, role_arn=args.role, channels=channels, output_path=output,
        hyperparameters=collect_hyperparameters(args.hyperparameters, args.hp),
        instance_type=args.instance_type, instance_count=args.instance_count, volume_size_gb=args.volume_size_gb,
        max_runtime_s=args.max_runtime_s, input_mode=args.input_mode, spot=args.spot, max_wait_s=args.max_wait_s,
        checkpoint_s3_uri=checkpoints, tags=parse_key_values(args.tag, "--tag"), model_uri=args.model_uri,
        embeddings_uri=args.embeddings)
    answer = clients("sagemaker").create_training_job(**jr.training_job_request(spec))
    emit(f"training job {name} created: {answer['TrainingJobArn']}")
    return _wait_if_asked(args, clients, emit, sleep, "training", name)


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
    description = monitor.describe(clients("sagemaker"), args.kind, args.name)
    for line in monitor.status_lines(args.kind, description):
        emit(line)
    return _exit_code(args.kind, description)


def _wait_if_asked(args, clients, emit, sleep, kind: str, name: str) -> int:
    if not args.wait:
        emit(f"follow it with: python -m seq2seq.sagemaker_client logs {name} --kind {kind} --follow")
        return 0
    description = monitor.follow(clients("sagemaker"), clients("logs"), kind, name, emit, sleep=sleep)
    for line in monitor.status_lines(kind, description):
        emit(line)
    return _exit_code(kind, description)


def _exit_code(kind: str, description: dict) -> int:
    return 1 if description.get(monitor.KINDS[kind].status_key) in ("Failed", "OutOfService") else 0


COMMANDS = {"submit": cmd_submit, "deploy": cmd_deploy, "transform": cmd_transform, "logs": cmd_logs,
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
