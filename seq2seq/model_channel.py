"""Fine-tuning: the trained model in SageMaker's `model` channel, checked against this job and loaded into it.

SageMaker's incremental training hands the previous job's output to the new job as an input channel named `model`
(content type application/x-sagemaker-model, File mode): /opt/ml/input/data/model/model.tar.gz. A directory with
the files of a model (config.json, params.best, the vocabularies) works as well, for `docker run` users who mount an
extracted model.

The archive is untrusted input. `safe_extract` writes only regular files and directories below its target: member
names that are absolute or contain `..`, links (symbolic or hard) that point outside, devices and FIFOs are refused
before anything is written, and the extraction itself runs with Python's tarfile `data` filter as well. A bad
archive (not gzip, truncated, a member missing) is a UserError of one line naming the archive and the member.

Loading (`load_into`): every parameter of the stored model is copied into the new one. The architecture must be the
same (`architecture_differences`, checked before any data is read); the vocabularies may differ: rows of the
vocabulary-indexed parameters (the embeddings, the output layer) are copied by token, and tokens the stored model
does not know keep their fresh initialisation.
"""

import contextlib
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

import mxnet as mx
import numpy as np

from .constants import (MODEL_ARCHIVE_FILE, MODEL_CHANNEL, MODEL_CONFIG_FILE, MODEL_PARAMS_FILE, VOCAB_SOURCE_FILE,
                        VOCAB_TARGET_FILE)
from .data.vocab import Vocabulary
from .errors import UserError
from .hyperparameters import Hyperparameters, model_fields
from .model.config import ModelConfig
from .model.seq2seq_model import Seq2SeqModel, current_parameter_name
from .model_dir import read_model_config

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
NEEDED_FILES = (MODEL_CONFIG_FILE, MODEL_PARAMS_FILE, VOCAB_SOURCE_FILE, VOCAB_TARGET_FILE)
# Model options that may change between the stored model and the fine-tuning job: they shape no parameter.
ADJUSTABLE_OPTIONS = ("embed_dropout_source", "embed_dropout_target", "rnn_decoder_hidden_dropout",
                      "max_seq_len_source", "max_seq_len_target")
# Parameters with one row per vocabulary entry: (structural name, side).
VOCABULARY_ROWS = {"encoder.embedding.weight": "source", "decoder.embedding.weight": "target",
                   "decoder.output_layer.weight": "target", "decoder.output_layer.bias": "target"}


@dataclass
class StoredModel:
    """A model found in the model channel, extracted to `directory` (a temporary directory for an archive)."""

    directory: str
    origin: str            # the archive or directory it came from, for messages
    config: ModelConfig
    source_vocab: Vocabulary
    target_vocab: Vocabulary

    @property
    def params_path(self) -> str:
        return os.path.join(self.directory, MODEL_PARAMS_FILE)


# ----- finding and extracting -----

def channel_has_model(channel_dir: str) -> bool:
    """True when the model channel directory exists and holds anything."""
    return os.path.isdir(channel_dir) and bool(os.listdir(channel_dir))


@contextlib.contextmanager
def open_stored_model(channel_dir: str) -> Iterator[StoredModel]:
    """The model of the channel directory (a model.tar.gz, any single *.tar.gz, or the extracted files), valid
    inside the `with` block; an archive is extracted to a temporary directory removed afterwards."""
    archives = sorted(name for name in os.listdir(channel_dir) if name.endswith(ARCHIVE_SUFFIXES))
    if MODEL_ARCHIVE_FILE in archives:
        archives = [MODEL_ARCHIVE_FILE]
    if os.path.exists(os.path.join(channel_dir, MODEL_CONFIG_FILE)) or not archives:
        yield _stored_model(_model_root(channel_dir, channel_dir), channel_dir)
        return
    if len(archives) > 1:
        raise UserError(f"channel '{MODEL_CHANNEL}': {channel_dir} holds several archives "
                        f"({', '.join(archives)}); give it one model.tar.gz")
    archive = os.path.join(channel_dir, archives[0])
    scratch = tempfile.mkdtemp(prefix="seq2seq-model-channel-")
    try:
        safe_extract(archive, scratch)
        yield _stored_model(_model_root(scratch, archive), archive)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _model_root(directory: str, origin: str) -> str:
    """`directory`, or its one subdirectory when the model's files are there (an archive of a folder)."""
    if os.path.exists(os.path.join(directory, MODEL_CONFIG_FILE)):
        return directory
    entries = sorted(os.listdir(directory))
    if len(entries) == 1 and os.path.exists(os.path.join(directory, entries[0], MODEL_CONFIG_FILE)):
        return os.path.join(directory, entries[0])
    return directory


def _stored_model(directory: str, origin: str) -> StoredModel:
    present = sorted(os.listdir(directory))
    missing = [name for name in NEEDED_FILES if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise UserError(f"channel '{MODEL_CHANNEL}': {origin} has no member {missing[0]!r} "
                        f"(a model needs {', '.join(NEEDED_FILES)}; it holds: {', '.join(present) or 'nothing'})")
    config, _ = read_model_config(directory)
    return StoredModel(directory, origin, config, Vocabulary.load(os.path.join(directory, VOCAB_SOURCE_FILE)),
                       Vocabulary.load(os.path.join(directory, VOCAB_TARGET_FILE)))


def _member_problem(member: tarfile.TarInfo, target: str) -> Optional[str]:
    """Why `member` may not be extracted into `target`, or None."""
    name = member.name
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in parts:
        return "contains '..'"
    if member.isdev() or member.isfifo() or not (member.isfile() or member.isdir() or member.issym()
                                                   or member.islnk()):
        return "is a device, FIFO or other special file"
    if member.issym() or member.islnk():
        link = member.linkname
        base = os.path.dirname(os.path.join(target, name)) if member.issym() else target
        resolved = os.path.realpath(os.path.join(base, link))
        if os.path.isabs(link) or os.path.commonpath([resolved, os.path.realpath(target)]) != \
                os.path.realpath(target):
            return f"is a link pointing outside the archive ({link!r})"
    return None


def safe_extract(archive: str, target: str, what: str = f"channel '{MODEL_CHANNEL}'") -> List[str]:
    """Extract the gzip tar `archive` into the directory `target`; returns the member names.

    Every member is checked before anything is written (see `_member_problem`); UserError names `what` (where the
    archive comes from), the archive and the offending (or unreadable) member."""
    where = f"{what}: {archive}"
    member_name = "its first member"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = []
            for member in tar:  # reads the whole archive: a truncated one fails here, before extraction
                member_name = repr(member.name)
                problem = _member_problem(member, target)
                if problem:
                    raise UserError(f"{where}: member {member.name!r} {problem}; the archive is refused and nothing "
                                    "was extracted")
                members.append(member)
            for member in members:
                member_name = repr(member.name)
                tar.extract(member, target, filter="data")
            return [m.name for m in members]
    except UserError:
        raise
    except tarfile.FilterError as error:
        raise UserError(f"{where}: member {member_name} is refused ({error})") from None
    except (tarfile.ReadError, tarfile.CompressionError) as error:
        if member_name == "its first member":
            raise UserError(f"{where}: not a gzip-compressed tar archive ({error})") from None
        raise UserError(f"{where}: unreadable after member {member_name}: truncated or corrupt ({error})") from None
    except (EOFError, zlib.error, tarfile.TarError) as error:
        raise UserError(f"{where}: truncated or corrupt at member {member_name} ({type(error).__name__}: "
                        f"{error or 'unexpected end of data'})") from None


# ----- the architecture gate -----

def architecture_differences(hp: Hyperparameters, stored: ModelConfig) -> List[str]:
    """Every architecture option in which `hp` differs from the stored model, as 'name = here (stored: there)'."""
    differences = []
    for f in model_fields():
        if f.name in ADJUSTABLE_OPTIONS:
            continue
        mine, theirs = getattr(hp, f.name), getattr(stored, f.name)
        if f.name == "rnn_attention_num_hidden":  # unset means rnn_num_hidden
            mine, theirs = mine or hp.rnn_num_hidden, theirs or stored.rnn_num_hidden
        if mine != theirs:
            differences.append(f"{f.name} = {_text(mine)} here, {_text(theirs)} in the stored model")
    return differences


def check_architecture(hp: Hyperparameters, stored: StoredModel) -> None:
    """UserError listing every difference between the hyperparameters and the stored model's architecture."""
    differences = architecture_differences(hp, stored.config)
    if differences:
        raise UserError(f"channel '{MODEL_CHANNEL}': the model in {stored.origin} has another architecture than "
                        f"these hyperparameters ({len(differences)} difference(s)): " + "; ".join(differences) +
                        ". Set them as in the stored model's config.json (regularisation, optimiser, learning-rate "
                        "schedule and max_seq_len_* may differ)")


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)


# ----- loading -----

@dataclass(frozen=True)
class VocabularyMapping:
    """Rows of a new vocabulary taken from a stored one: `new_ids[i]` takes the stored row `stored_ids[i]`."""

    new_ids: np.ndarray
    stored_ids: np.ndarray
    new_size: int
    stored_size: int

    @property
    def identical(self) -> bool:
        return self.new_size == self.stored_size == len(self.new_ids) and bool(
            np.array_equal(self.new_ids, self.stored_ids))

    @property
    def num_copied(self) -> int:
        return len(self.new_ids)

    @property
    def num_new(self) -> int:
        return self.new_size - len(self.new_ids)

    @property
    def num_dropped(self) -> int:
        return self.stored_size - len(self.stored_ids)


def map_vocabulary(new: Vocabulary, stored: Vocabulary) -> VocabularyMapping:
    """Match the tokens of `new` to those of `stored` (the reserved symbols share ids 0..3 in both)."""
    stored_ids = stored.token_to_id()
    pairs = [(new_id, stored_ids[token]) for new_id, token in enumerate(new.id_to_token) if token in stored_ids]
    new_ids = np.array([p[0] for p in pairs], dtype=np.int64)
    old_ids = np.array([p[1] for p in pairs], dtype=np.int64)
    return VocabularyMapping(new_ids, old_ids, len(new), len(stored))


@dataclass(frozen=True)
class LoadReport:
    source: VocabularyMapping
    target: VocabularyMapping

    def lines(self) -> List[str]:
        out = []
        for side, mapping in (("source", self.source), ("target", self.target)):
            if mapping.identical:
                out.append(f"{side} vocabulary: identical to the stored model's ({mapping.new_size} tokens)")
            else:
                out.append(f"{side} vocabulary: {mapping.num_copied} of {mapping.new_size} tokens take the stored "
                           f"model's rows, {mapping.num_new} new tokens get fresh rows; {mapping.num_dropped} of the "
                           f"stored model's {mapping.stored_size} tokens are not used")
        return out


def stored_parameters(path: str) -> Dict[str, np.ndarray]:
    """The parameters of a params file by their current structural names (older names renamed)."""
    try:
        loaded = mx.nd.load(path)
    except Exception as error:  # MXNetError for a damaged file
        raise UserError(f"channel '{MODEL_CHANNEL}': {path} cannot be read as model parameters "
                        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None
    if not isinstance(loaded, dict):
        raise UserError(f"channel '{MODEL_CHANNEL}': {path} holds no named parameters")
    return {current_parameter_name(name): value.asnumpy() for name, value in loaded.items()}


def load_into(model: Seq2SeqModel, stored: StoredModel, source_vocab: Vocabulary,
              target_vocab: Vocabulary) -> LoadReport:
    """Copy the stored model's parameters into the initialised `model` (on all its contexts), rows of the
    vocabulary-indexed parameters mapped by token. UserError naming the parameter if one is missing or misshaped."""
    mappings = {"source": map_vocabulary(source_vocab, stored.source_vocab),
                "target": map_vocabulary(target_vocab, stored.target_vocab)}
    values = stored_parameters(stored.params_path)
    names = model.shared_names()   # a tied parameter is stored under one of its names (older files: under each)
    for name, parameter in model.unique_parameters().items():
        stored_name = next((alias for alias in names[name] if alias in values), None)
        if stored_name is None:
            raise UserError(f"channel '{MODEL_CHANNEL}': {stored.origin}: {MODEL_PARAMS_FILE} has no parameter "
                            f"{name!r}")
        value, side = values[stored_name], VOCABULARY_ROWS.get(name)
        if side is not None:
            mapping = mappings[side]
            new_value = parameter.data(parameter.list_ctx()[0]).asnumpy()
            if value.shape[1:] != new_value.shape[1:] or value.shape[0] != mapping.stored_size:
                raise _shape_error(stored, name, value.shape, new_value.shape)
            new_value[mapping.new_ids] = value[mapping.stored_ids]
            value = new_value
        elif tuple(value.shape) != tuple(parameter.shape):
            raise _shape_error(stored, name, value.shape, parameter.shape)
        parameter.set_data(mx.nd.array(value, dtype=parameter.dtype))
    report = LoadReport(mappings["source"], mappings["target"])
    for line in report.lines():
        logger.info("fine-tuning from %s: %s", stored.origin, line)
    return report


def _shape_error(stored: StoredModel, name: str, found, expected) -> UserError:
    return UserError(f"channel '{MODEL_CHANNEL}': {stored.origin}: parameter {name!r} has shape {tuple(found)}, "
                     f"this model needs {tuple(expected)}")
