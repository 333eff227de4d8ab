"""seq2seq.content_types: the one table of content types, used by the endpoint, the client and the SageMaker requests."""
import pytest

from seq2seq import client, content_types
from seq2seq.content_types import JSON, JSONLINES, RECORDIO_PROTOBUF, canonical
from seq2seq.sagemaker_client import job_requests
from seq2seq.serving import formats


@pytest.mark.parametrize("name, expected", [
    ("application/json", JSON), ("Application/JSON; charset=utf-8", JSON), ("application/jsonl", JSONLINES),
    (" application/x-jsonlines ", JSONLINES), ("applications/x-recordio-protobuf", RECORDIO_PROTOBUF),
    ("text/csv", None), ("", None),
])
def test_canonical_maps_every_accepted_spelling(name, expected):
    assert canonical(name) == expected


def test_every_alias_names_a_served_type():
    assert set(content_types.ALIASES.values()) == set(content_types.SERVED)


def test_endpoint_client_and_job_requests_use_the_same_table():
    assert client.JSON is formats.JSON is job_requests.JSON is JSON
    assert client.JSONLINES is job_requests.JSONLINES is JSONLINES
    assert client.RECORDIO_PROTOBUF is formats.RECORDIO_PROTOBUF is job_requests.RECORDIO_PROTOBUF
