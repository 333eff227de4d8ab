"""`python -m seq2seq.sagemaker_client tune` and the tuning job's status, and `submit --tensorboard-s3`: every AWS
request checked by botocore's Stubber (expected parameters and the client's own validation) and, in full, against
the service model's enums, lengths, patterns and limits."""

import datetime
import json
import re

import botocore.session
import pytest

from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.sagemaker_client import job_requests
from tests.unit.test_sagemaker_client import (  # noqa: F401 (aws and prepared_dir are fixtures)
    IMAGE, NOW, ROLE, arn, aws, prepared_dir, run, training_description)

CHANNELS = {c: f"s3://data/{c}/" for c in ("train", "validation", "vocab")}
CHANNEL_ARGS = [arg for c, uri in CHANNELS.items() for arg in (f"--{c}", uri)]
SPACE = {
    "learning_rate": {"type": "continuous", "min": 0.0001, "max": 0.003, "scaling": "logarithmic"},
    "rnn_decoder_hidden_dropout": {"type": "continuous", "min": 0.0, "max": 0.4},
    "num_layers_encoder": {"type": "integer", "min": 1, "max": 2, "scaling": "linear"},
    "rnn_attention_type": {"type": "categorical", "values": ["mlp", "dot"]},
}
# SPACE as SageMaker's ParameterRanges, written out by hand
PARAMETER_RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.003", "ScalingType": "Logarithmic"},
        {"Name": "rnn_decoder_hidden_dropout", "MinValue": "0.0", "MaxValue": "0.4", "ScalingType": "Auto"}],
    "IntegerParameterRanges": [{"Name": "num_layers_encoder", "MinValue": "1", "MaxValue": "2",
                                "ScalingType": "Linear"}],
    "CategoricalParameterRanges": [{"Name": "rnn_attention_type", "Values": ["mlp", "dot"]}],
}
TRAINING_DEFINITION = {
    "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File",
                               "MetricDefinitions": job_requests.metric_definitions()},
    "RoleArn": ROLE,
    "InputDataConfig": [
        {"ChannelName": channel, "ContentType": content_type, "CompressionType": "None", "RecordWrapperType": "None",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                                         "S3Uri": CHANNELS[channel]}}}
        for channel, content_type in (("train", "application/x-recordio-protobuf"),
                                      ("validation", "application/x-recordio-protobuf"),
                                      ("vocab", "application/json"))],
    "OutputDataConfig": {"S3OutputPath": "s3://out/models"},
    "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
    "EnableManagedSpotTraining": False,
}
SAGEMAKER_MODEL = botocore.session.get_session().get_service_model("sagemaker")


# --- the service model, in full ---------------------------------------------------------------

def model_problems(shape, value, path="") -> list:
    """Where `value` breaks the service model's `shape`: unknown or missing members, enums, lengths, ranges,
    patterns (botocore's own validation checks types, required members and minimums only)."""
    problems, meta = [], shape.metadata
    if shape.type_name == "structure":
        problems += [f"{path}.{key}: unknown member" for key in value if key not in shape.members]
        problems += [f"{path}.{key}: missing" for key in shape.required_members if key not in value]
        for key, item in value.items():
            if key in shape.members:
                problems += model_problems(shape.members[key], item, f"{path}.{key}")
    elif shape.type_name == "list":
        problems += _size_problems(path, len(value), meta)
        for index, item in enumerate(value):
            problems += model_problems(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "map":
        problems += _size_problems(path, len(value), meta)
        for key, item in value.items():
            problems += model_problems(shape.key, key, f"{path}<key {key}>")
            problems += model_problems(shape.value, item, f"{path}[{key}]")
    elif shape.type_name == "string":
        if not isinstance(value, str):
            return [f"{path}: {value!r} is not a string"]
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not in {shape.enum}")
        problems += _size_problems(path, len(value), meta)
        pattern = meta.get("pattern")
        if pattern and "\\p" not in pattern and not re.fullmatch(pattern, value):
            problems.append(f"{path}: {value!r} does not match {pattern}")
    elif shape.type_name in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: {value!r} is not an integer"]
        problems += _size_problems(path, value, meta)
    elif shape.type_name == "boolean" and not isinstance(value, bool):
        problems.append(f"{path}: {value!r} is not a boolean")
    return problems


def _size_problems(path, size, meta) -> list:
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and size < low) or (high is not None and size > high):
        return [f"{path}: {size} outside {low}..{high}"]
    return []


def sent_requests(aws, operation):
    """The parameters of every `operation` call the sagemaker client makes, as sent."""
    sent = []
    aws("sagemaker").meta.events.register(f"provide-client-params.sagemaker.{operation}",
                                          lambda params, **_: sent.append(params))
    return sent


def assert_matches_model(operation, params):
    assert model_problems(SAGEMAKER_MODEL.operation_model(operation).input_shape, params) == []


def test_the_model_check_finds_what_botocore_lets_through():
    shape = SAGEMAKER_MODEL.operation_model("CreateHyperParameterTuningJob").input_shape
    problems = model_problems(shape, {
        "HyperParameterTuningJobName": "x" * 33,
        "HyperParameterTuningJobConfig": {"Strategy": "Grid-ish", "ResourceLimits": {"MaxParallelTrainingJobs": 1}},
        "WarmStartConfig": {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "p"}] * 6,
                            "WarmStartType": "IdenticalDataAndAlgorithm"}})
    assert any("HyperParameterTuningJobName: 33 outside 1..32" in p for p in problems)
    assert any("'Grid-ish' not in" in p for p in problems)
    assert any("ParentHyperParameterTuningJobs: 6 outside 1..5" in p for p in problems)


# --- tune -------------------------------------------------------------------------------------

@pytest.fixture
def space_json(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(SPACE))
    return path


@pytest.fixture
def space_yaml(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("learning_rate: {type: continuous, min: 0.0001, max: 0.003, scaling: logarithmic}\n"
                    "rnn_decoder_hidden_dropout: {type: continuous, min: 0.0, max: 0.4}\n"
                    "num_layers_encoder: {type: integer, min: 1, max: 2, scaling: linear}\n"
                    "rnn_attention_type: {type: categorical, values: [mlp, dot]}\n")
    return path


def tune_args(space, *extra):
    return (["tune", "--image", IMAGE, "--role", ROLE, "--job-name", "nmt-tune-1", "--ranges", str(space),
             "--output-path", "s3://out/models"] + CHANNEL_ARGS + list(extra))


def test_tune_bayesian_bleu_request_in_full(aws, space_yaml):
    sent = sent_requests(aws, "CreateHyperParameterTuningJob")
    aws.stub("sagemaker").add_response(
        "create_hyper_parameter_tuning_job",
        {"HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", "nmt-tune-1")},
        {"HyperParameterTuningJobName": "nmt-tune-1",
         "HyperParameterTuningJobConfig": {
             "Strategy": "Bayesian",
             "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:bleu"},
             "ResourceLimits": {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3},
             "ParameterRanges": PARAMETER_RANGES,
             "TrainingJobEarlyStoppingType": "Off"},
         "TrainingJobDefinition": dict(TRAINING_DEFINITION, StaticHyperParameters={
             "bleu_sample_size": "200", "max_num_epochs": "8", "optimized_metric": "bleu"})})
    code, lines = run(tune_args(space_yaml, "--hp", "bleu_sample_size=200", "--hp", "max_num_epochs=8",
                                "--hp", "optimized_metric=bleu", "--max-jobs", "12", "--max-parallel-jobs", "3"), aws)
    assert code == 0, lines
    aws.verify()
    assert_matches_model("CreateHyperParameterTuningJob", sent[0])
    assert lines[0] == (f"tuning job nmt-tune-1 created: {arn('hyper-parameter-tuning-job', 'nmt-tune-1')} "
                        "(Bayesian, maximize validation:bleu, 4 ranges, up to 12 training jobs, 3 at a time)")
    assert lines[1] == "follow it with: python -m seq2seq.sagemaker_client status nmt-tune-1 --kind tuning --wait"


@pytest.mark.parametrize("strategy", ["Bayesian", "Random", "Hyperband"])
@pytest.mark.parametrize("objective, direction", [("validation:bleu", "Maximize"),
                                                  ("validation:perplexity", "Minimize")])
def test_tune_request_per_strategy_and_objective(aws, space_json, strategy, objective, direction):
    sent = sent_requests(aws, "CreateHyperParameterTuningJob")
    static = {"bleu_sample_size": "-1", "epochs": "20"}
    config = {"Strategy": strategy,
              "HyperParameterTuningJobObjective": {"Type": direction, "MetricName": objective},
              "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 1},
              "ParameterRanges": PARAMETER_RANGES, "TrainingJobEarlyStoppingType": "Off"}
    extra = []
    if strategy == "Hyperband":
        config["StrategyConfig"] = {"HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 16}}
        extra = ["--min-resource", "2", "--max-resource", "16"]
    aws.stub("sagemaker").add_response(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", "t")},
        {"HyperParameterTuningJobName": "nmt-tune-1", "HyperParameterTuningJobConfig": config,
         "TrainingJobDefinition": dict(TRAINING_DEFINITION, StaticHyperParameters=static)})
    code, lines = run(tune_args(space_json, "--strategy", strategy, "--objective", objective,
                                "--hp", "bleu_sample_size=-1", "--hp", "epochs=20", *extra), aws)
    assert code == 0, lines
    aws.verify()
    assert_matches_model("CreateHyperParameterTuningJob", sent[0])


def test_hyperband_reads_its_budget_from_the_epochs_alias(aws, space_json):
    """Without --max-resource SageMaker reads MaxResource from the static `epochs`, which the gate accepts as
    max_num_epochs: the request has an empty HyperbandStrategyConfig."""
    assert parse_hyperparameters({"epochs": "6"}).max_num_epochs == 6
    aws.stub("sagemaker").add_response(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", "t")},
        {"HyperParameterTuningJobName": "nmt-tune-1", "TrainingJobDefinition": dict(
            TRAINING_DEFINITION, StaticHyperParameters={"epochs": "6"}),
         "HyperParameterTuningJobConfig": {
             "Strategy": "Hyperband", "StrategyConfig": {"HyperbandStrategyConfig": {}},
             "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:perplexity"},
             "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 1},
             "ParameterRanges": PARAMETER_RANGES, "TrainingJobEarlyStoppingType": "Off"}})
    code, lines = run(tune_args(space_json, "--strategy", "Hyperband", "--objective", "validation:perplexity",
                                "--hp", "epochs=6"), aws)
    assert code == 0, lines
    aws.verify()


def test_tune_uploads_data_warm_starts_stops_early_and_tags(aws, space_json, prepared_dir):
    sent = sent_requests(aws, "CreateHyperParameterTuningJob")
    for _ in range(4):
        aws.stub("s3").add_response("put_object", {}, None)
    definition = dict(TRAINING_DEFINITION, StaticHyperParameters={"bleu_sample_size": "100"},
                      OutputDataConfig={"S3OutputPath": "s3://bucket/exp/output"},
                      ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
                      StoppingCondition={"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400},
                      EnableManagedSpotTraining=True,
                      CheckpointConfig={"S3Uri": "s3://bucket/exp/ckpt", "LocalPath": "/opt/ml/checkpoints"})
    definition["InputDataConfig"] = [
        dict(channel, DataSource={"S3DataSource": dict(channel["DataSource"]["S3DataSource"],
                                                       S3Uri=f"s3://bucket/exp/tune-2/data/{channel['ChannelName']}/")})
        for channel in TRAINING_DEFINITION["InputDataConfig"]]
    aws.stub("sagemaker").add_response(
        "create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", "t")},
        {"HyperParameterTuningJobName": "tune-2",
         "HyperParameterTuningJobConfig": {
             "Strategy": "Random",
             "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:bleu"},
             "ResourceLimits": {"MaxNumberOfTrainingJobs": 30, "MaxParallelTrainingJobs": 5},
             "ParameterRanges": PARAMETER_RANGES, "TrainingJobEarlyStoppingType": "Auto"},
         "TrainingJobDefinition": definition,
         "WarmStartConfig": {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "tune-0"},
                                                                {"HyperParameterTuningJobName": "tune-1"}],
                             "WarmStartType": "TransferLearning"},
         "Tags": [{"Key": "project", "Value": "nmt"}]})
    code, lines = run(["tune", "--image", IMAGE, "--role", ROLE, "--job-name", "tune-2", "--ranges", str(space_json),
                       "--data", str(prepared_dir), "--s3-prefix", "s3://bucket/exp", "--hp",
                       "bleu_sample_size=100", "--strategy", "Random", "--max-jobs", "30", "--max-parallel-jobs", "5",
                       "--early-stopping", "Auto", "--warm-start-from", "tune-0, tune-1",
                       "--warm-start-type", "TransferLearning", "--instance-type", "ml.g5.xlarge",
                       "--instance-count", "2", "--spot", "--max-runtime-s", "7200", "--max-wait-s", "14400",
                       "--checkpoint-s3", "s3://bucket/exp/ckpt", "--tag", "project=nmt"], aws)
    assert code == 0, lines
    aws.verify()
    assert_matches_model("CreateHyperParameterTuningJob", sent[0])
    assert sorted(aws.s3_puts) == [("bucket", "exp/tune-2/data/train/train.rec"),
                                   ("bucket", "exp/tune-2/data/validation/val.rec"),
                                   ("bucket", "exp/tune-2/data/vocab/vocab.src.json"),
                                   ("bucket", "exp/tune-2/data/vocab/vocab.trg.json")]


@pytest.mark.parametrize("extra, message", [
    (["--hp", "learning_rate=0.001"], "hyperparameter 'learning_rate' is both static and in the search space"),
    (["--hp", "max_num_epochs=3", "--hp", "bleu_sample_size=5", "--ranges-entry", "max_num_epochs"],
     "hyperparameter 'max_num_epochs' is both static and in the search space"),
    (["--strategy", "Hyperband", "--early-stopping", "Auto", "--max-resource", "9"],
     "--strategy Hyperband stops poor training jobs itself: --early-stopping must be Off"),
    (["--strategy", "Hyperband", "--hp", "max_num_epochs=9"],
     "--strategy Hyperband needs its epoch budget: give --max-resource N, or the static hyperparameter epochs=N"),
    (["--strategy", "Hyperband", "--max-resource", "20001"], "--max-resource must be 1..20000"),
    (["--strategy", "Hyperband", "--min-resource", "5", "--max-resource", "4"],
     "--min-resource (5) must not exceed --max-resource (4)"),
    (["--min-resource", "2"], "--min-resource and --max-resource are for --strategy Hyperband, not Bayesian"),
    (["--max-jobs", "4", "--max-parallel-jobs", "5"], "--max-parallel-jobs (5) must not exceed --max-jobs (4)"),
    (["--warm-start-from", "a,b,c,d,e,f"], "--warm-start-from names 6 tuning jobs; at most 5 are allowed"),
    (["--job-name", "a-tuning-job-name-of-33-characters"], "use 1-32 letters"),
    (["--hp", "bleu_sample_size=0"], "objective validation:bleu needs BLEU at every checkpoint"),
    (["--hp", "rnn_num_hiden=512"], "did you mean 'rnn_num_hidden'"),
    (["--hp", "momentum=0.9", "--ranges-entry", "optimizer_type"], "space.json: entry 'optimizer_type' = 'adam'"),
])
def test_tune_refuses_before_any_request(aws, capsys, tmp_path, prepared_dir, extra, message):
    space = dict(SPACE)
    if "--ranges-entry" in extra:
        entry = extra[extra.index("--ranges-entry") + 1]
        extra = [arg for arg in extra if arg not in ("--ranges-entry", entry)]
        space[entry] = ({"type": "integer", "min": 2, "max": 9} if entry == "max_num_epochs"
                        else {"type": "categorical", "values": ["sgd", "adam"]})
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    if not any(arg.startswith("bleu_sample_size") for arg in extra):
        extra = extra + ["--hp", "bleu_sample_size=-1"]
    code, _ = run(["tune", "--image", IMAGE, "--role", ROLE, "--ranges", str(path), "--data", str(prepared_dir),
                   "--s3-prefix", "s3://bucket/exp"] + extra, aws)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    aws.verify()               # no request: none was queued, and a made one would have failed
    assert aws.s3_puts == []   # nothing uploaded either


@pytest.mark.parametrize("content, suffix, message", [
    ({"rnn_num_hiden": {"type": "integer", "min": 256, "max": 512}}, ".json",
     "entry 'rnn_num_hiden': unknown hyperparameter 'rnn_num_hiden'; did you mean 'rnn_num_hidden'?"),
    ({"learning_rate": {"type": "continuous", "min": 0.01, "max": 0.001}}, ".json", "entry 'learning_rate': empty range"),
    ("learning_rate: {type: continuous, min: 0.001\n", ".yaml", "not valid YAML"),
    ({"learning_rate": {"type": "continuous", "min": 0.001, "max": 0.01}}, ".txt", "must end in .json, .yaml or .yml"),
])
def test_tune_names_the_bad_ranges_file(aws, capsys, tmp_path, content, suffix, message):
    path = tmp_path / f"space{suffix}"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    code, _ = run(tune_args(path, "--hp", "bleu_sample_size=-1"), aws)
    err = capsys.readouterr().err
    assert code == 2
    assert str(path) in err and message in err
    aws.verify()


def test_tune_names_a_missing_ranges_file(aws, capsys, tmp_path):
    code, _ = run(tune_args(tmp_path / "nowhere.yaml"), aws)
    err = capsys.readouterr().err
    assert code == 2 and "nowhere.yaml: cannot be read" in err


def test_tune_has_no_tensorboard_option_and_the_request_builder_refuses_one():
    """The API's HyperParameterTrainingJobDefinition has no TensorBoardOutputConfig."""
    assert "TensorBoardOutputConfig" not in SAGEMAKER_MODEL.shape_for("HyperParameterTrainingJobDefinition").members
    training = job_requests.TrainingJobSpec(name="t", image=IMAGE, role_arn=ROLE, channels=CHANNELS,
                                            output_path="s3://o/", hyperparameters={},
                                            tensorboard_s3_uri="s3://o/tb")
    from seq2seq.search_space import parse_search_space
    spec = job_requests.TuningJobSpec(name="t", ranges=parse_search_space(SPACE, "space"))
    with pytest.raises(Exception, match="no TensorBoardOutputConfig"):
        job_requests.tuning_job_request(spec, training)
    with pytest.raises(SystemExit):
        run(["tune", "--tensorboard-s3", "s3://o/tb"], None)


# --- the tuning job's status ------------------------------------------------------------------

def tuning_description(status="Completed", best=True, **extra):
    description = {
        "HyperParameterTuningJobName": "nmt-tune-1",
        "HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", "nmt-tune-1"),
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:bleu"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}},
        "HyperParameterTuningJobStatus": status, "CreationTime": NOW,
        "TrainingJobStatusCounters": {"Completed": 4, "InProgress": 0, "RetryableError": 0,
                                      "NonRetryableError": 1, "Stopped": 1},
        "ObjectiveStatusCounters": {"Succeeded": 4, "Pending": 0, "Failed": 2},
    }
    if best:
        description["BestTrainingJob"] = {
            "TrainingJobName": "nmt-tune-1-003-5b2c9d1e", "TrainingJobArn": arn("training-job", "nmt-tune-1-003"),
            "CreationTime": NOW, "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"learning_rate": "0.0011", "rnn_attention_type": "\"mlp\""},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "validation:bleu", "Value": 27.5}}
    description.update(extra)
    return description


def test_status_of_a_tuning_job_shows_the_best_job_and_how_to_deploy_it(aws):
    aws.stub("sagemaker").add_response("describe_hyper_parameter_tuning_job", tuning_description(),
                                       {"HyperParameterTuningJobName": "nmt-tune-1"})
    code, lines = run(["status", "nmt-tune-1", "--kind", "tuning"], aws)
    assert code == 0
    aws.verify()
    assert lines == [
        "status: Completed",
        "training jobs: 4 Completed, 0 InProgress, 0 RetryableError, 1 NonRetryableError, 1 Stopped",
        "objective: maximize validation:bleu",
        "best training job: nmt-tune-1-003-5b2c9d1e (Completed)",
        "  validation:bleu: 27.5",
        "  learning_rate = 0.0011",
        '  rnn_attention_type = "mlp"',
        "deploy it with: python -m seq2seq.sagemaker_client deploy --training-job nmt-tune-1-003-5b2c9d1e",
    ]


def test_tune_wait_polls_until_the_tuning_job_ends(aws, space_json):
    sagemaker = aws.stub("sagemaker")
    sagemaker.add_response("create_hyper_parameter_tuning_job",
                           {"HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", "nmt-tune-1")}, None)
    running = tuning_description("InProgress", best=False, TrainingJobStatusCounters={"InProgress": 2})
    for description in (running, running, tuning_description()):
        sagemaker.add_response("describe_hyper_parameter_tuning_job", description,
                               {"HyperParameterTuningJobName": "nmt-tune-1"})
    sleeps = []
    code, lines = run(tune_args(space_json, "--hp", "bleu_sample_size=-1", "--wait"), aws, sleeps)
    assert code == 0, lines
    aws.verify()
    assert sleeps == [15.0, 15.0]
    progress = [line for line in lines if line.startswith("status: ") and "training jobs" in line]
    assert progress == [  # printed when it changes, not at every poll
        "status: InProgress; training jobs: 0 Completed, 2 InProgress, 0 RetryableError, 0 NonRetryableError, "
        "0 Stopped",
        "status: Completed; training jobs: 4 Completed, 0 InProgress, 0 RetryableError, 1 NonRetryableError, "
        "1 Stopped"]
    assert lines[-1] == ("deploy it with: python -m seq2seq.sagemaker_client deploy --training-job "
                         "nmt-tune-1-003-5b2c9d1e")


def test_waiting_for_a_failed_tuning_job_exits_non_zero(aws):
    aws.stub("sagemaker").add_response(
        "describe_hyper_parameter_tuning_job",
        tuning_description("Failed", best=False, FailureReason="All training jobs failed"), None)
    code, lines = run(["status", "nmt-tune-1", "--kind", "tuning", "--wait"], aws, [])
    assert code == 1
    assert "failure reason: All training jobs failed" in lines
    assert "best training job: none yet (no training job has reported the objective metric)" in lines
    assert not any(line.startswith("deploy it with") for line in lines)


def test_a_finished_tuning_job_without_a_best_job_exits_non_zero(aws):
    aws.stub("sagemaker").add_response("describe_hyper_parameter_tuning_job",
                                       tuning_description("Stopped", best=False), None)
    code, _ = run(["status", "nmt-tune-1", "--kind", "tuning"], aws)
    assert code == 1


def test_a_warm_started_tuning_job_deploys_the_overall_best(aws):
    overall = {"TrainingJobName": "tune-0-007-aa11bb22", "TrainingJobArn": arn("training-job", "tune-0-007"),
               "CreationTime": NOW, "TrainingJobStatus": "Completed", "TunedHyperParameters": {"learning_rate": "0.002"},
               "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "validation:bleu", "Value": 28.25}}
    aws.stub("sagemaker").add_response("describe_hyper_parameter_tuning_job",
                                       tuning_description(OverallBestTrainingJob=overall), None)
    code, lines = run(["status", "nmt-tune-1", "--kind", "tuning"], aws)
    assert code == 0
    assert "best training job with the warm-start parents: tune-0-007-aa11bb22 (Completed)" in lines
    assert "  validation:bleu: 28.25" in lines
    assert lines[-1] == "deploy it with: python -m seq2seq.sagemaker_client deploy --training-job tune-0-007-aa11bb22"


def test_deploy_takes_a_training_job_that_a_tuning_job_created(aws):
    best = "nmt-tune-1-003-5b2c9d1e"
    model_data = f"s3://out/models/{best}/output/model.tar.gz"
    description = training_description(
        TrainingJobName=best, TrainingJobArn=arn("training-job", best),
        TuningJobArn=arn("hyper-parameter-tuning-job", "nmt-tune-1"), ModelArtifacts={"S3ModelArtifacts": model_data},
        HyperParameters={"learning_rate": "0.0011", "_tuning_objective_metric": "validation:bleu",
                         "bleu_sample_size": "-1"})
    sagemaker = aws.stub("sagemaker")
    sagemaker.add_response("describe_training_job", description, {"TrainingJobName": best})
    sagemaker.add_response("create_model", {"ModelArn": arn("model", "nmt-best")}, {
        "ModelName": "nmt-best", "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": model_data}})
    sagemaker.add_response("create_endpoint_config", {"EndpointConfigArn": arn("endpoint-config", "nmt-best")}, None)
    sagemaker.add_response("create_endpoint", {"EndpointArn": arn("endpoint", "nmt-best")}, None)
    code, lines = run(["deploy", "--training-job", best, "--name", "nmt-best"], aws)
    assert code == 0, lines
    aws.verify()
    # the job it trained accepts what SageMaker adds to a tuning job's hyperparameters
    parse_hyperparameters(dict(description["HyperParameters"], sagemaker_estimator_module="x"))


def test_logs_has_no_tuning_kind(aws):
    with pytest.raises(SystemExit):
        run(["logs", "nmt-tune-1", "--kind", "tuning"], aws)


# --- submit --tensorboard-s3 ------------------------------------------------------------------

@pytest.mark.parametrize("extra, local_path", [([], "/opt/ml/output/tensorboard"),
                                               (["--tensorboard-local-path", "/opt/ml/output/tb"], "/opt/ml/output/tb")])
def test_submit_uploads_tensorboard_event_files_when_asked(aws, extra, local_path):
    sent = sent_requests(aws, "CreateTrainingJob")
    aws.stub("sagemaker").add_response("create_training_job", {"TrainingJobArn": arn("training-job", "job-tb")}, {
        "TrainingJobName": "job-tb", "AlgorithmSpecification": dict(TRAINING_DEFINITION["AlgorithmSpecification"],
                                                                    EnableSageMakerMetricsTimeSeries=True),
        "RoleArn": ROLE, "HyperParameters": {}, "InputDataConfig": TRAINING_DEFINITION["InputDataConfig"],
        "OutputDataConfig": {"S3OutputPath": "s3://out/models"}, "ResourceConfig": TRAINING_DEFINITION["ResourceConfig"],
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400}, "EnableManagedSpotTraining": False,
        "CheckpointConfig": {"S3Uri": "s3://out/models/job-tb/checkpoints", "LocalPath": "/opt/ml/checkpoints"},
        "TensorBoardOutputConfig": {"S3OutputPath": "s3://bucket/nmt/tensorboard", "LocalPath": local_path}})
    code, lines = run(["submit", "--image", IMAGE, "--role", ROLE, "--job-name", "job-tb", "--output-path",
                       "s3://out/models", "--tensorboard-s3", "s3://bucket/nmt/tensorboard"] + CHANNEL_ARGS + extra,
                      aws)
    assert code == 0, lines
    aws.verify()
    assert_matches_model("CreateTrainingJob", sent[0])


def test_submit_refuses_a_tensorboard_location_that_is_not_s3(aws, capsys):
    code, _ = run(["submit", "--image", IMAGE, "--role", ROLE, "--output-path", "s3://out/models",
                   "--tensorboard-s3", "/tmp/tb"] + CHANNEL_ARGS, aws)
    assert code == 2
    assert "'/tmp/tb' is not an S3 URI" in capsys.readouterr().err
    aws.verify()
