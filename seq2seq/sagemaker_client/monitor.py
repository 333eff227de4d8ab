"""Status and CloudWatch logs of training jobs, endpoints and transform jobs; status of tuning jobs."""

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
    log_group: Optional[str]   # CloudWatch log group ("{name}" is replaced); None: no logs of its own
    stream_prefix: str = ""    # log stream prefix ("{name}" is replaced)


KINDS: Dict[str, ResourceKind] = {
    "training": ResourceKind("describe_training_job", "TrainingJobName", "TrainingJobStatus",
                             "/aws/sagemaker/TrainingJobs", "{name}/"),
    "endpoint": ResourceKind("describe_endpoint", "EndpointName", "EndpointStatus",
                             "/aws/sagemaker/Endpoints/{name}", ""),
    "transform": ResourceKind("describe_transform_job", "TransformJobName", "TransformJobStatus",
                              "/aws/sagemaker/TransformJobs", "{name}/"),
    # a tuning job's logs are its training jobs'
    "tuning": ResourceKind("describe_hyper_parameter_tuning_job", "HyperParameterTuningJobName",
                           "HyperParameterTuningJobStatus", None),
}
TRAINING_JOB_COUNTERS = ("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped")


def describe(sagemaker_client, kind: str, name: str) -> dict:
    """The Describe* answer for `name`."""
    spec = KINDS[kind]
    return getattr(sagemaker_client, spec.describe)(**{spec.name_param: name})


def status_lines(kind: str, description: dict) -> List[str]:
    """A short human summary of a Describe* answer: status, failure, metrics, artifacts."""
    if kind == "tuning":
        return tuning_status_lines(description)
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


def training_job_counts(description: dict) -> str:
    """`3 Completed, 2 InProgress, 0 RetryableError, 1 NonRetryableError, 0 Stopped` of a tuning job."""
    counters = description.get("TrainingJobStatusCounters", {})
    return ", ".join(f"{counters.get(name, 0)} {name}" for name in TRAINING_JOB_COUNTERS)


def progress_line(kind: str, description: dict) -> str:
    """One line that changes when the resource moves on: its status (and a tuning job's training job counts)."""
    line = f"status: {description.get(KINDS[kind].status_key, 'unknown')}"
    if description.get("SecondaryStatus"):
        line += f" ({description['SecondaryStatus']})"
    if kind == "tuning":
        line += f"; training jobs: {training_job_counts(description)}"
    return line


def tuning_status_lines(description: dict) -> List[str]:
    """A tuning job: status, its training jobs by status, the best training job with its objective value and
    tuned hyperparameters, and the command that deploys it."""
    lines = [f"status: {description.get('HyperParameterTuningJobStatus', 'unknown')}"]
    if description.get("FailureReason"):
        lines.append(f"failure reason: {description['FailureReason']}")
    lines.append(f"training jobs: {training_job_counts(description)}")
    objective = description.get("HyperParameterTuningJobConfig", {}).get("HyperParameterTuningJobObjective", {})
    if objective:
        lines.append(f"objective: {objective.get('Type', '').lower()} {objective.get('MetricName')}")
    best = description.get("BestTrainingJob")
    overall = description.get("OverallBestTrainingJob")
    if not best:
        lines.append("best training job: none yet (no training job has reported the objective metric)")
    for title, job in (("best training job", best), ("best training job with the warm-start parents", overall)):
        if not job or (job is overall and best and overall["TrainingJobName"] == best["TrainingJobName"]):
            continue
        lines.append(f"{title}: {job['TrainingJobName']} ({job.get('TrainingJobStatus', 'unknown')})")
        metric = job.get("FinalHyperParameterTuningJobObjectiveMetric")
        if metric:
            lines.append(f"  {metric['MetricName']}: {metric['Value']:g}")
        for name, value in sorted(job.get("TunedHyperParameters", {}).items()):
            lines.append(f"  {name} = {value}")
    chosen = overall or best
    if chosen:
        lines.append(f"deploy it with: python -m seq2seq.sagemaker_client deploy --training-job "
                     f"{chosen['TrainingJobName']}")
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


def poll(sagemaker_client, kind: str, name: str, on_description: Callable[[dict], None], poll_s: float = 15.0,
         sleep: Callable[[float], None] = time.sleep, wait: bool = True) -> dict:
    """Describe the resource, hand the answer to `on_description`, and (when `wait`) repeat every `poll_s`
    seconds until it reaches a terminal state; returns the last Describe* answer."""
    while True:
        description = describe(sagemaker_client, kind, name)
        on_description(description)
        if not wait or description.get(KINDS[kind].status_key) in TERMINAL_STATES:
            return description
        sleep(poll_s)


def follow(sagemaker_client, logs_client, kind: str, name: str, emit: Callable[[str], None] = print,
           poll_s: float = 15.0, sleep: Callable[[float], None] = time.sleep, wait: bool = True) -> dict:
    """Print the logs (until the resource reaches a terminal state when `wait`); returns the last
    Describe* answer. Logs are read after each Describe*, so a terminal state's last lines are shown."""
    follower = LogFollower(logs_client, kind, name, emit)
    return poll(sagemaker_client, kind, name, lambda _: follower.poll(), poll_s, sleep, wait)


def watch(sagemaker_client, kind: str, name: str, emit: Callable[[str], None] = print, poll_s: float = 15.0,
          sleep: Callable[[float], None] = time.sleep) -> dict:
    """Poll until the resource reaches a terminal state, printing its progress line whenever it changes;
    returns the last Describe* answer."""
    printed = []

    def report(description: dict) -> None:
        line = progress_line(kind, description)
        if not printed or printed[-1] != line:
            emit(line)
            printed.append(line)

    return poll(sagemaker_client, kind, name, report, poll_s, sleep)
