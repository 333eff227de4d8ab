"""The content types of the project, in one table: what the endpoint reads and writes, what the
client sends, and what the SageMaker requests declare for channels and batch transform.

    application/json                  endpoint requests and answers; the vocab channel
    application/jsonlines             endpoint and batch transform, one JSON object per line
    application/x-recordio-protobuf   endpoint (ids in, ids out); the train and validation channels
    application/x-sagemaker-model     the model channel of a fine-tuning job (a previous job's model.tar.gz)
    text/plain                        the embeddings channel (word2vec / GloVe text)

`canonical(name)` maps every spelling we accept (parameters and letter case ignored) to one of these.
"""
from typing import Optional

JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
SERVED = (JSON, JSONLINES, RECORDIO_PROTOBUF)
SAGEMAKER_MODEL = "application/x-sagemaker-model"
TEXT = "text/plain"

# Every accepted spelling -> the canonical type. Clients also write these; the Seq2Seq docs write
# "applications/x-recordio-protobuf" for Accept.
ALIASES = {
    JSON: JSON,
    JSONLINES: JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-jsonlines": JSONLINES,
    RECORDIO_PROTOBUF: RECORDIO_PROTOBUF,
    "applications/x-recordio-protobuf": RECORDIO_PROTOBUF,
}


def canonical(name: str) -> Optional[str]:
    """The canonical type of a Content-Type or media range (`"Application/JSONL; charset=utf-8"`), or None."""
    return ALIASES.get(name.split(";", 1)[0].strip().lower())
