"""Error types. A `UserError` is caused by the user's data or settings; anything else is internal.

Every error carries an HTTP status so that serving can answer with it directly.
"""


class Seq2SeqError(Exception):
    """Base class of the project's errors. `status` is the HTTP status it maps to."""

    status = 500

    def __init__(self, message: str, status: int = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class UserError(Seq2SeqError):
    """A problem with the user's input: data, vocabulary, hyperparameters or a request."""

    status = 400


class DataFormatError(UserError):
    """Corrupt or invalid RecordIO-protobuf data. The message names the file and byte offset."""

    def __init__(self, message: str, source: str = "<bytes>", offset: int = None, record: int = None):
        where = [source]
        if record is not None:
            where.append(f"record {record}")
        if offset is not None:
            where.append(f"byte offset {offset}")
        super().__init__(f"{', '.join(where)}: {message}")
        self.source = source
        self.offset = offset
        self.record = record
        self.reason = message


class HyperparameterError(UserError):
    """An invalid or unknown hyperparameter; the message names it and its allowed values."""


class CheckpointError(UserError):
    """A damaged or unusable checkpoint in /opt/ml/checkpoints; the message names the file and the fault."""


class StorageError(Seq2SeqError):
    """A file could not be written (full disk, no permission); the message names the file and the cause."""


class DistributedError(Seq2SeqError):
    """A peer in multi-host training died or could not be reached."""


def check_condition(condition: bool, message: str, error_type=UserError) -> None:
    """Raise `error_type(message)` unless `condition` holds."""
    if not condition:
        raise error_type(message)
