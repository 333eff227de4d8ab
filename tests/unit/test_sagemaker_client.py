"""`python -m seq2seq.sagemaker_client`: every AWS request checked by botocore's Stubber against the service model."""

import datetime
import json
import re

import boto3
import pytest
from botocore.stub import ANY, Stubber

from seq2seq.sagemaker_client import cli, job_requests, monitor, s3_data
from seq2seq.errors import UserError
from seq2seq.training.metrics_log import metric_lines

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/seq2seq-mxnet:gpu"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
NOW = datetime.datetime(2024, 5, 1, 12, 0, 0)


def arn(kind, name):
    return f"arn:aws:sagemaker:us-east-1:123456789012:{kind}/{name}"


class StubbedClients:
    """The `clients` callable of cli.main, returning stubbed boto3 clients (no network, fake keys)."""

    def __init__(self):
        self.clients, self.stubbers = {}, {}
        self.s3_puts = []
        for service in ("sagemaker", "s3", "logs"):
            client = boto3.client(service, region_name="us-east-1", aws_access_key_id="testing",
                                  aws_secret_access_key="testing")
            self.clients[service] = client
            self.stubbers[service] = Stubber(client)
            self.stubbers[service].activate()
        self.clients["s3"].meta.events.register("before-parameter-build.s3.PutObject", self._record_put)

    def _record_put(self, params, **_):
        self.s3_puts.append((params["Bucket"], params["Key"]))

    def __call__(self, service):
        return self.clients[service]

    def stub(self, service):
        return self.stubbers[service]

    def verify(self):
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def aws():
    clients = StubbedClients()
    yield clients
    for stubber in clients.stubbers.values():
        stubber.deactivate()


def run(argv, aws, sleeps=None):
    lines = []
    code = cli.main(argv, clients=aws, emit=lines.append, sleep=(sleeps.append if sleeps is not None else None))
    return code, lines


def training_description(status="Completed", **extra):
    description = {
        "TrainingJobName": "job-1", "TrainingJobArn": arn("training-job", "job-1"),
        "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/output/job-1/output/model.tar.gz"},
        "TrainingJobStatus": status, "SecondaryStatus": status,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "CreationTime": NOW,
    }
    description.update(extra)
    return description


@pytest.fixture
def prepared_dir(tmp_path):
    for name in ("train.rec", "val.rec", "vocab.src.json", "vocab.trg.json"):
        (tmp_path / name).write_bytes(b"x" * 8)
    return tmp_path


# --- metric regexes -------------------------------------------------------------------------

@pytest.mark.parametrize("name, line, value", [
    ("validation:bleu", "#quality_metric: host=algo-1, epoch=3, batch=1200 validation bleu <score>=27.31", 27.31),
    ("validation:perplexity", "#quality_metric: host=algo-2, epoch=0, batch=5 validation perplexity <score>=4.5e+01",
     45.0),
    ("validation:accuracy", "#quality_metric: host=algo-1, epoch=12, batch=30000 validation accuracy <score>=0.731",
     0.731),
    ("train:perplexity", "#quality_metric: host=algo-1, epoch=1, batch=200 train perplexity <score>=12.5", 12.5),
])
def test_metric_definitions_capture_the_documented_lines(name, line, value):
    regexes = {d["Name"]: d["Regex"] for d in job_requests.metric_definitions()}
    # SageMaker searches each log line (with its timestamp prefix) for the regex
    match = re.search(regexes[name], f"[05/01/2024 12:00:00 INFO 1] {line}")
    assert match and float(match.group(1)) == pytest.approx(value)
    others = [other for other in regexes if other != name]
    assert not any(re.search(regexes[other], line) for other in others)


def test_metric_definitions_capture_what_the_trainer_prints():
    record = {"epoch": 2, "updates": 400, "validation_bleu": 31.25, "validation_perplexity": 3.5,
              "validation_accuracy": 0.625, "train_perplexity": 4.0}
    printed = "\n".join(metric_lines("algo-1", record))
    found = {d["Name"]: float(re.search(d["Regex"], printed).group(1)) for d in job_requests.metric_definitions()}
    assert found == {"validation:bleu": 31.25, "validation:perplexity": 3.5, "validation:accuracy": 0.625,
                     "train:perplexity": 4.0}


# --- submit ---------------------------------------------------------------------------------

def test_submit_uploads_prepared_data_and_creates_the_training_job(aws, prepared_dir, tmp_path):
    hp_file = tmp_path / "hp.json"
    hp_file.write_text(json.dumps({"batch_size": 128, "rnn_num_hidden": "512", "bucketing_enabled": False}))
    for _ in range(4):
        aws.stub("s3").add_response("put_object", {}, None)
    expected = {
        "TrainingJobName": "job-1",
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                   "MetricDefinitions": job_requests.metric_definitions(),
                                   "EnableSageMakerMetricsTimeSeries": True},
        "RoleArn": ROLE,
        "HyperParameters": {"batch_size": "128", "rnn_num_hidden": "512", "bucketing_enabled": "false",
                            "learning_rate": "0.001"},
        "InputDataConfig": [
            {"ChannelName": channel, "ContentType": content_type, "CompressionType": "None",
             "RecordWrapperType": "None",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                                             "S3Uri": f"s3://bucket/exp/job-1/data/{channel}/"}}}
            for channel, content_type in (("train", "application/x-recordio-protobuf"),
                                          ("validation", "application/x-recordio-protobuf"),
                                          ("vocab", "application/json"))],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/exp/output"},
        "ResourceConfig": {"InstanceType": "ml.p3.8xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800},
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {"S3Uri": "s3://bucket/exp/output/job-1/checkpoints", "LocalPath": "/opt/ml/checkpoints"},
        "Tags": [{"Key": "project", "Value": "nmt"}],
    }
    aws.stub("sagemaker").add_response(
        "create_training_job", {"TrainingJobArn": arn("training-job", "job-1")},
        expected)
    code, lines = run(["submit", "--image", IMAGE, "--role", ROLE, "--job-name", "job-1",
                       "--data", str(prepared_dir), "--s3-prefix", "s3://bucket/exp",
                       "--hyperparameters", str(hp_file), "--hp", "learning_rate=0.001",
                       "--instance-type", "ml.p3.8xlarge", "--instance-count", "2", "--max-runtime-s", "7200",
                       "--spot", "--max-wait-s", "10800", "--tag", "project=nmt"], aws)
    assert code == 0, lines
    aws.verify()
    assert sorted(aws.s3_puts) == [("bucket", "exp/job-1/data/train/train.rec"),
                                   ("bucket", "exp/job-1/data/validation/val.rec"),
                                   ("bucket", "exp/job-1/data/vocab/vocab.src.json"),
                                   ("bucket", "exp/job-1/data/vocab/vocab.trg.json")]
    assert any("training job job-1 created" in line for line in lines)


def test_submit_with_s3_channels_and_no_checkpoints(aws):
    channels = {c: f"s3://data/{c}/" for c in ("train", "validation", "vocab")}
    aws.stub("sagemaker").add_response("create_training_job", {"TrainingJobArn": arn("training-job", "job-2")}, {
        "TrainingJobName": "job-2", "AlgorithmSpecification": ANY, "RoleArn": ROLE, "HyperParameters": {},
        "InputDataConfig": ANY, "OutputDataConfig": {"S3OutputPath": "s3://out/models"},
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400}, "EnableManagedSpotTraining": False})
    code, lines = run(["submit", "--image", IMAGE, "--role", ROLE, "--job-name", "job-2", "--no-checkpoints",
                       "--output-path", "s3://out/models", "--input-mode", "File"]
                      + [arg for c, uri in channels.items() for arg in (f"--{c}", uri)], aws)
    assert code == 0, lines
    aws.verify()


@pytest.mark.parametrize("extra, message", [
    (["--hp", "rnn_num_hiden=512"], "did you mean 'rnn_num_hidden'"),
    (["--hp", "batch_size=0"], "batch_size"),
    (["--spot", "--max-runtime-s", "7200", "--max-wait-s", "3600"], "--max-wait-s"),
    (["--job-name", "bad_name!"], "not a valid SageMaker name"),
    (["--hp", "novalue"], "NAME=VALUE"),
])
def test_submit_rejects_bad_arguments_before_calling_aws(aws, capsys, extra, message):
    channels = [arg for c in ("train", "validation", "vocab") for arg in (f"--{c}", f"s3://data/{c}/")]
    code, _ = run(["submit", "--image", IMAGE, "--role", ROLE, "--output-path", "s3://out/m"] + channels + extra, aws)
    assert code == 2
    assert message in capsys.readouterr().err
    aws.verify()  # no request was made (a made request would have raised: no response queued)


def test_submit_needs_data_or_all_three_channels(aws, capsys):
    code, _ = run(["submit", "--image", IMAGE, "--role", ROLE, "--output-path", "s3://o/m",
                   "--train", "s3://d/train/"], aws)
    assert code == 2
    assert "--validation --vocab" in capsys.readouterr().err


def test_submit_reports_an_aws_error(aws, capsys):
    aws.stub("sagemaker").add_client_error("create_training_job", "ResourceLimitExceeded",
                                           "The account-level service limit is 0 Instances")
    channels = [arg for c in ("train", "validation", "vocab") for arg in (f"--{c}", f"s3://data/{c}/")]
    code, _ = run(["submit", "--image", IMAGE, "--role", ROLE, "--output-path", "s3://o/m"] + channels, aws)
    assert code == 1
    assert "AWS error (ResourceLimitExceeded): The account-level service limit" in capsys.readouterr().err


# --- deploy and transform -------------------------------------------------------------------

def test_deploy_from_a_training_job_and_wait_until_in_service(aws):
    sagemaker = aws.stub("sagemaker")
    sagemaker.add_response("describe_training_job", training_description(), {"TrainingJobName": "job-1"})
    sagemaker.add_response("create_model", {"ModelArn": arn("model", "nmt-1")}, {
        "ModelName": "nmt-1", "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://bucket/output/job-1/output/model.tar.gz",
                             "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}}})
    sagemaker.add_response("create_endpoint_config", {"EndpointConfigArn": arn("endpoint-config", "nmt-1")}, {
        "EndpointConfigName": "nmt-1",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "nmt-1", "InitialInstanceCount": 2,
                                "InstanceType": "ml.g4dn.xlarge", "InitialVariantWeight": 1.0}]})
    sagemaker.add_response("create_endpoint", {"EndpointArn": arn("endpoint", "nmt-1")},
                           {"EndpointName": "nmt-1", "EndpointConfigName": "nmt-1"})
    endpoint = {"EndpointName": "nmt-1", "EndpointArn": arn("endpoint", "nmt-1"), "EndpointConfigName": "nmt-1",
                "CreationTime": NOW, "LastModifiedTime": NOW}
    logs = aws.stub("logs")
    for status in ("Creating", "InService"):
        sagemaker.add_response("describe_endpoint", dict(endpoint, EndpointStatus=status), {"EndpointName": "nmt-1"})
        logs.add_response("describe_log_streams", {"logStreams": [{"logStreamName": "AllTraffic/i-1"}]},
                          {"logGroupName": "/aws/sagemaker/Endpoints/nmt-1", "orderBy": "LogStreamName"})
        events = [{"timestamp": 1, "message": "worker loads the model"}] if status == "Creating" else []
        logs.add_response("get_log_events", {"events": events, "nextForwardToken": f"f/{len(events)}"}, {
            "logGroupName": "/aws/sagemaker/Endpoints/nmt-1", "logStreamName": "AllTraffic/i-1",
            "startFromHead": True, **({"nextToken": "f/1"} if status == "InService" else {})})
        if status == "Creating":
            logs.add_response("get_log_events", {"events": [], "nextForwardToken": "f/1"}, {
                "logGroupName": "/aws/sagemaker/Endpoints/nmt-1", "logStreamName": "AllTraffic/i-1",
                "startFromHead": True, "nextToken": "f/1"})
    sleeps = []
    code, lines = run(["deploy", "--training-job", "job-1", "--name", "nmt-1", "--instance-type", "ml.g4dn.xlarge",
                       "--instance-count", "2", "--env", "SAGEMAKER_MODEL_SERVER_WORKERS=2", "--wait"], aws, sleeps)
    assert code == 0, lines
    aws.verify()
    assert lines.count("worker loads the model") == 1
    assert "status: InService" in lines
    assert sleeps == [15.0]


def test_deploy_needs_a_model(aws, capsys):
    code, _ = run(["deploy", "--image", IMAGE, "--role", ROLE], aws)
    assert code == 2
    assert "--model-data or --training-job" in capsys.readouterr().err


def test_transform_creates_a_jsonlines_batch_job(aws):
    aws.stub("sagemaker").add_response("create_transform_job", {"TransformJobArn": arn("transform-job", "tr-1")}, {
        "TransformJobName": "tr-1", "ModelName": "nmt-1", "MaxConcurrentTransforms": 2, "MaxPayloadInMB": 6,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://in/src/"}},
                           "ContentType": "application/jsonlines", "CompressionType": "None", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": "s3://out/trg/", "Accept": "application/jsonlines",
                            "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}})
    code, lines = run(["transform", "--model-name", "nmt-1", "--job-name", "tr-1", "--input", "s3://in/src/",
                       "--output", "s3://out/trg/", "--max-concurrent", "2"], aws)
    assert code == 0, lines
    aws.verify()
    assert f"transform job tr-1 created: {arn('transform-job', 'tr-1')}" in lines


def test_transform_rejects_a_non_s3_input(aws, capsys):
    code, _ = run(["transform", "--model-name", "m", "--input", "/local/dir", "--output", "s3://o/"], aws)
    assert code == 2
    assert "is not an S3 URI" in capsys.readouterr().err


# --- status and logs ------------------------------------------------------------------------

def test_status_of_a_failed_job_shows_the_reason_and_metrics(aws):
    description = training_description(
        "Failed", FailureReason="UserError: hyperparameter 'rnn_num_hidden' = 7 must be even",
        FinalMetricDataList=[{"MetricName": "validation:perplexity", "Value": 5.5, "Timestamp": NOW}])
    aws.stub("sagemaker").add_response("describe_training_job", description, {"TrainingJobName": "job-1"})
    code, lines = run(["status", "job-1"], aws)
    assert code == 1
    assert "status: Failed" in lines
    assert "failure reason: UserError: hyperparameter 'rnn_num_hidden' = 7 must be even" in lines
    assert "metric validation:perplexity: 5.5" in lines


def test_logs_follow_prints_every_event_once_across_streams(aws):
    sagemaker, logs = aws.stub("sagemaker"), aws.stub("logs")
    group = "/aws/sagemaker/TrainingJobs"
    streams = {"logStreams": [{"logStreamName": "job-1/algo-1-1"}, {"logStreamName": "job-1/algo-2-1"}]}
    tokens = {}

    def expect_events(stream, messages, new_token):
        query = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if stream in tokens:
            query["nextToken"] = tokens[stream]
        events = [{"timestamp": 1, "message": m} for m in messages]
        logs.add_response("get_log_events", {"events": events, "nextForwardToken": new_token}, query)
        tokens[stream] = new_token

    for status, batches in (("InProgress", {"algo-1": ["#quality_metric: a"], "algo-2": ["b"]}),
                            ("Completed", {"algo-1": ["done"], "algo-2": []})):
        sagemaker.add_response("describe_training_job", training_description(status), {"TrainingJobName": "job-1"})
        logs.add_response("describe_log_streams", streams,
                          {"logGroupName": group, "orderBy": "LogStreamName", "logStreamNamePrefix": "job-1/"})
        for host, messages in batches.items():
            stream = f"job-1/{host}-1"
            expect_events(stream, messages, f"{host}/{status}")
            if messages:  # more may follow: read again until no new events
                expect_events(stream, [], f"{host}/{status}")
    sleeps = []
    code, lines = run(["logs", "job-1", "--follow", "--poll-s", "1"], aws, sleeps)
    assert code == 0
    aws.verify()
    assert lines == ["[job-1/algo-1-1] #quality_metric: a", "[job-1/algo-2-1] b", "[job-1/algo-1-1] done"]
    assert sleeps == [1.0]


def test_logs_before_the_log_group_exists(aws):
    aws.stub("sagemaker").add_response("describe_training_job", training_description("InProgress"), None)
    aws.stub("logs").add_client_error("describe_log_streams", "ResourceNotFoundException", "no group")
    code, lines = run(["logs", "job-1"], aws)
    assert code == 0 and lines == []
    aws.verify()


# --- pure helpers ---------------------------------------------------------------------------

@pytest.mark.parametrize("uri, expected", [
    ("s3://bucket/a/b", ("bucket", "a/b")), ("s3://bucket", ("bucket", "")), ("s3://bucket/", ("bucket", "")),
])
def test_parse_s3_uri(uri, expected):
    assert s3_data.parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["bucket/key", "s3://", "https://bucket.s3.amazonaws.com/k", None])
def test_parse_s3_uri_rejects(uri):
    with pytest.raises(UserError):
        s3_data.parse_s3_uri(uri)


def test_channel_files_accepts_the_channel_directory_layout(tmp_path):
    for channel, name in (("train", "a.rec"), ("train", "b.rec"), ("validation", "v.rec"), ("vocab", "vocab.src.json")):
        (tmp_path / channel).mkdir(exist_ok=True)
        (tmp_path / channel / name).write_bytes(b"x")
    files = s3_data.channel_files(str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in files["train"]] == ["a.rec", "b.rec"]


def test_channel_files_names_the_missing_channel(prepared_dir):
    (prepared_dir / "val.rec").unlink()
    with pytest.raises(UserError, match="no files for channel.s. validation"):
        s3_data.channel_files(str(prepared_dir))


def test_default_name_is_valid_and_timestamped():
    name = job_requests.default_name("seq2seq", now=0)
    assert name == "seq2seq-19700101-000000"
    assert job_requests.check_name(name, "job") == name


def test_status_lines_of_a_transform_job():
    lines = monitor.status_lines("transform", {"TransformJobStatus": "Completed",
                                               "TransformOutput": {"S3OutputPath": "s3://o/"}})
    assert lines == ["status: Completed", "output: s3://o/"]


def test_submit_with_model_uri_adds_the_model_channel_for_fine_tuning(aws):
    channels = {c: f"s3://data/{c}/" for c in ("train", "validation", "vocab")}
    expected_channels = [
        {"ChannelName": c, "ContentType": t, "CompressionType": "None", "RecordWrapperType": "None",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                                         "S3Uri": f"s3://data/{c}/"}}}
        for c, t in (("train", "application/x-recordio-protobuf"), ("validation", "application/x-recordio-protobuf"),
                     ("vocab", "application/json"))] + [
        {"ChannelName": "model", "ContentType": "application/x-sagemaker-model", "CompressionType": "None",
         "RecordWrapperType": "None", "InputMode": "File",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                                         "S3Uri": "s3://out/models/job-1/output/model.tar.gz"}}},
        {"ChannelName": "embeddings", "ContentType": "text/plain", "CompressionType": "None",
         "RecordWrapperType": "None", "InputMode": "File",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                                         "S3Uri": "s3://data/glove/"}}}]
    aws.stub("sagemaker").add_response("create_training_job", {"TrainingJobArn": arn("training-job", "job-3")}, {
        "TrainingJobName": "job-3", "AlgorithmSpecification": ANY, "RoleArn": ROLE,
        "HyperParameters": {"fixed_param_strategy": "embeddings"}, "InputDataConfig": expected_channels,
        "OutputDataConfig": {"S3OutputPath": "s3://out/models"}, "ResourceConfig": ANY,
        "StoppingCondition": ANY, "EnableManagedSpotTraining": False,
        "CheckpointConfig": {"S3Uri": "s3://out/models/job-3/checkpoints", "LocalPath": "/opt/ml/checkpoints"}})
    code, lines = run(["submit", "--image", IMAGE, "--role", ROLE, "--job-name", "job-3", "--input-mode", "Pipe",
                       "--output-path", "s3://out/models", "--model-uri", "s3://out/models/job-1/output/model.tar.gz",
                       "--embeddings", "s3://data/glove/", "--hp", "fixed_param_strategy=embeddings"]
                      + [arg for c, uri in channels.items() for arg in (f"--{c}", uri)], aws)
    assert code == 0, lines
    aws.verify()


def test_submit_rejects_a_model_uri_that_is_not_s3(aws, capsys):
    channels = [arg for c in ("train", "validation", "vocab") for arg in (f"--{c}", f"s3://data/{c}/")]
    code, _ = run(["submit", "--image", IMAGE, "--role", ROLE, "--output-path", "s3://out/m",
                   "--model-uri", "model.tar.gz"] + channels, aws)
    assert code == 2
    assert "model.tar.gz" in capsys.readouterr().err
    aws.verify()
