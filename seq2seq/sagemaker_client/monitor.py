"""Status and CloudWatch logs of training jobs, endpoints and transform jobs."""

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

TERMINAL_STATES = {"Completed", "Failed", "Stopped", "InService", "OutOfService"}


@dataclass(frozen=True)
class ResourceKind:
    """How to describe one kind of SageMaker resource and where its logs go."""

    describe: str          # client method
    name_param: str        # its name parameter
    status_key: str        # status field of the answer
    log_group: str         # CloudWatch log group ("{name}" is replaced)
    stream_prefix: str     # log stream prefix ("{name}" is replaced)


KINDS: Dict[str, ResourceKind] = {
    "training": ResourceKind("describe_training_job", "TrainingJobName", "TrainingJobStatus",
                             "/aws/sagemaker/TrainingJobs", "{name}/"),
    "endpoint": ResourceKind("describe_endpoint", "EndpointName", "EndpointStatus",
                             "/aws/sagemaker/Endpoints/{name}", ""),
    "transform": ResourceKind("describe_transform_job", "TransformJobName", "TransformJobStatus",
                              "/aws/sagemaker/TransformJobs", "{name}/"),
}


def describe(sagemaker_client, kind: str, name: str) -> dict:
    """The Describe* answer for `name`."""
    spec = KINDS[kind]
    return getattr(sagemaker_client, spec.describe)(**{spec.name_param: name})


def status_lines(kind: str, description: dict) -> List[str]:
    """A short human summary of a Describe* answer: status, failure, metrics, artifacts."""
    spec = KINDS[kind]
    lines = [f"status: {description.get(spec.status_key, 'unknown')}"]
    if description.get("SecondaryStatus"):
        lines.append(f"secondary status: {description['SecondaryStatus']}")
    if description.get("FailureReason"):
        lines.append(f"failure reason: {description['FailureReason']}")
    for metric in description.get("FinalMetricDataList", []):
        lines.append(f"metric {metric['MetricName']}: {metric['Value']:g}")
    artifacts = description.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if artifacts:
        lines.append(f"model artifacts: {artifacts}")
    if description.get("BillableTimeInSeconds") is not None:
        lines.append(f"billable seconds: {description['BillableTimeInSeconds']}")
    output = description.get("TransformOutput", {}).get("S3OutputPath")
    if output:
        lines.append(f"output: {output}")
    return lines


class LogFollower:
    """Prints new CloudWatch events of a resource's log streams; call `poll()` repeatedly."""

    def __init__(self, logs_client, kind: str, name: str, emit: Callable[[str], None] = print):
        spec = KINDS[kind]
        self.logs = logs_client
        self.group = spec.log_group.format(name=name)
        self.prefix = spec.stream_prefix.format(name=name)
        self.emit = emit
        self.tokens: Dict[str, Optional[str]] = {}

    def _streams(self) -> List[str]:
        names, token = [], None
        while True:
            query = {"logGroupName": self.group, "orderBy": "LogStreamName"}
            if self.prefix:
                query["logStreamNamePrefix"] = self.prefix
            if token:
                query["nextToken"] = token
            try:
                answer = self.logs.describe_log_streams(**query)
            except self.logs.exceptions.ResourceNotFoundException:
                return []  # the group appears when the first container starts
            names += [stream["logStreamName"] for stream in answer.get("logStreams", [])]
            token = answer.get("nextToken")
            if not token:
                return names

    def poll(self) -> int:
        """Print the events that arrived since the last poll; returns how many."""
        count = 0
        streams = self._streams()
        for stream in streams:
            while True:
                query = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
                if self.tokens.get(stream):
                    query["nextToken"] = self.tokens[stream]
                answer = self.logs.get_log_events(**query)
                events = answer.get("events", [])
                for event in events:
                    self.emit(f"[{stream}] {event['message']}" if len(streams) > 1 else event["message"])
                count += len(events)
                unchanged = answer.get("nextForwardToken") == self.tokens.get(stream)
                self.tokens[stream] = answer.get("nextForwardToken")
                if not events or unchanged:
                    break
        return count


def follow(sagemaker_client, logs_client, kind: str, name: str, emit: Callable[[str], None] = print,
           poll_s: float = 15.0, sleep: Callable[[float], None] = time.sleep, wait: bool = True) -> dict:
    """Print the logs (until the resource reaches a terminal state when `wait`); returns the last
    Describe* answer. Logs are read after each Describe*, so a terminal state's last lines are shown."""
    follower = LogFollower(logs_client, kind, name, emit)
    while True:
        description = describe(sagemaker_client, kind, name)
        follower.poll()
        if not wait or description.get(KINDS[kind].status_key) in TERMINAL_STATES:
            return description
        sleep(poll_s)
