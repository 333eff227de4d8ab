"""Pretrained word vectors (word2vec or GloVe text files) copied into the embedding matrices.

The `embeddings` channel holds `embed.src.txt` and/or `embed.trg.txt` (or either gzip-compressed, `.gz`): one
token and its numbers per line, separated by spaces (GloVe), optionally after a word2vec header line
`<count> <dimension>`. The dimension must
equal num_embed_source / num_embed_target. Rows of the vocabulary's tokens found in the file are replaced by the
file's vectors; the others (and the reserved symbols) keep their initialisation. With subword vocabularies a piece
is looked up as it is and without (or with) SentencePiece's word-boundary mark, so `▁house` finds `house`.

With weight tying the files fill the tied matrix: trg_softmax's target file sets the output layer's rows as well;
with src_trg / src_trg_softmax (one vocabulary, one matrix) the source file comes first and the target file sets
only the rows the source file left (a token in both files keeps its source vector).

Bad files are UserErrors naming the file and line: a line with another count of numbers, a field that is not a
number, bytes that are not UTF-8.
"""

import gzip
import logging
import os
import zlib
from dataclasses import dataclass
from typing import Dict, Iterable, Optional

import mxnet as mx
import numpy as np

from .constants import EMBEDDINGS_CHANNEL, EMBEDDINGS_SOURCE_FILE, EMBEDDINGS_TARGET_FILE, RESERVED_SYMBOLS
from .data.vocab import Vocabulary
from .errors import UserError

logger = logging.getLogger(__name__)

WORD_BOUNDARY = "\u2581"  # SentencePiece's mark of a piece that starts a word
EMBEDDING_FILES = {"source": EMBEDDINGS_SOURCE_FILE, "target": EMBEDDINGS_TARGET_FILE}
SIZE_OPTION = {"source": "num_embed_source", "target": "num_embed_target"}


def lookup_names(token: str, subword: bool) -> tuple:
    """The names under which `token` is looked up in a vector file, in order of preference."""
    if not subword:
        return (token,)
    if token.startswith(WORD_BOUNDARY) and len(token) > 1:
        return token, token[len(WORD_BOUNDARY):]
    return token, WORD_BOUNDARY + token


def read_vectors(path: str, dimension: int, wanted: Iterable[str], size_option: str) -> Dict[str, np.ndarray]:
    """The vectors of the tokens in `wanted` from the text file `path` (every line is checked).

    `size_option` names the hyperparameter the dimension must match, for the messages. The first occurrence of a
    token wins."""
    wanted = set(wanted)
    vectors: Dict[str, np.ndarray] = {}
    try:
        stream = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except OSError as error:
        raise UserError(f"embedding file {path} cannot be read ({error.strerror or error})") from None
    with stream:
        for number, raw in _numbered_lines(stream, path):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise UserError(f"embedding file {path} line {number}: not UTF-8 (byte {error.start} of the "
                                "line)") from None
            fields = line.rstrip().split(" ")
            if fields == [""]:
                continue
            if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):  # word2vec header
                if int(fields[1]) != dimension:
                    raise UserError(f"embedding file {path} line 1: the word2vec header gives dimension {fields[1]}, "
                                    f"but {size_option} is {dimension}")
                continue
            if len(fields) - 1 != dimension:
                raise UserError(f"embedding file {path} line {number}: {len(fields) - 1} numbers after the token, "
                                f"but {size_option} is {dimension} (the vectors must have that size)")
            try:
                vector = np.array(fields[1:], dtype=np.float32)
            except ValueError:
                bad = next(f for f in fields[1:] if not _is_number(f))
                raise UserError(f"embedding file {path} line {number}: {bad[:40]!r} is not a number") from None
            if not np.all(np.isfinite(vector)):
                raise UserError(f"embedding file {path} line {number}: the vector is not finite (nan or inf)")
            token = fields[0]
            if token in wanted and token not in vectors:
                vectors[token] = vector
    return vectors


def _numbered_lines(stream, path: str):
    """(line number, bytes) of a plain or gzip stream; a damaged gzip file is a UserError naming the line."""
    number = 0
    try:
        for number, raw in enumerate(stream, start=1):
            yield number, raw
    except (OSError, EOFError, zlib.error) as error:
        raise UserError(f"embedding file {path} line {number + 1}: unreadable ({type(error).__name__}: "
                        f"{error or 'truncated'})") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class EmbeddingLoad:
    """What one file gave: the new vocabulary ids whose rows were set (`ids`), out of `total` tokens."""

    side: str
    path: str
    ids: np.ndarray
    total: int

    @property
    def share(self) -> float:
        return len(self.ids) / self.total if self.total else 0.0


def vocabulary_vectors(vocab: Vocabulary, vectors: Dict[str, np.ndarray], subword: bool):
    """(ids, rows): the vocabulary ids (reserved symbols excluded) with a vector, and those vectors."""
    ids, rows = [], []
    for token_id, token in enumerate(vocab.id_to_token):
        if token in RESERVED_SYMBOLS:
            continue
        for name in lookup_names(token, subword):
            if name in vectors:
                ids.append(token_id)
                rows.append(vectors[name])
                break
    return np.array(ids, dtype=np.int64), rows


def load_embedding_file(parameter, side: str, path: str, vocab: Vocabulary, dimension: int,
                        subword: bool, keep_ids: Optional[np.ndarray] = None) -> EmbeddingLoad:
    """Set the rows of the embedding `parameter` (a Gluon Parameter, every context) from the file `path`;
    the rows `keep_ids` (set by another file into the same, shared matrix) are left as they are."""
    wanted = {name for token in vocab.id_to_token for name in lookup_names(token, subword)}
    vectors = read_vectors(path, dimension, wanted, SIZE_OPTION[side])
    ids, rows = vocabulary_vectors(vocab, vectors, subword)
    if keep_ids is not None and len(keep_ids) and len(ids):
        fresh = ~np.isin(ids, keep_ids)
        logger.info("pretrained %s embeddings: %d tokens already set from the other file keep those vectors (the "
                    "source and target embeddings are one matrix)", side, int((~fresh).sum()))
        ids, rows = ids[fresh], [row for row, keep in zip(rows, fresh) if keep]
    if len(ids):
        value = parameter.data(parameter.list_ctx()[0]).asnumpy()
        value[ids] = np.stack(rows)
        parameter.set_data(mx.nd.array(value, dtype=parameter.dtype))
    load = EmbeddingLoad(side, path, ids, len(vocab) - len(RESERVED_SYMBOLS))
    logger.info("pretrained %s embeddings from %s: %d of %d tokens found (%.1f%%); the others keep their "
                "initialisation", side, path, len(ids), load.total, 100 * load.share)
    return load


def embedding_files(channel_dir: str) -> Dict[str, str]:
    """{side: path} of the embedding files in the channel directory; UserError when it has neither file."""
    if not os.path.isdir(channel_dir):
        return {}
    found = {}
    for side, name in EMBEDDING_FILES.items():
        for candidate in (name, name + ".gz"):
            if os.path.isfile(os.path.join(channel_dir, candidate)):
                found[side] = os.path.join(channel_dir, candidate)
                break
    if not found:
        present = ", ".join(sorted(os.listdir(channel_dir))) or "nothing"
        raise UserError(f"channel '{EMBEDDINGS_CHANNEL}': {channel_dir} has neither {EMBEDDINGS_SOURCE_FILE} nor "
                        f"{EMBEDDINGS_TARGET_FILE} (it holds: {present})")
    return found


def load_pretrained_embeddings(model, channel_dir: str, source_vocab: Vocabulary, target_vocab: Vocabulary,
                               subword: Optional[object] = None) -> Dict[str, EmbeddingLoad]:
    """Load every embedding file of the channel into the model's embedding matrices; {side: EmbeddingLoad}."""
    loads = {}
    config = model.config
    for side, path in embedding_files(channel_dir).items():      # the source file first
        keep_ids = None
        if side == "source":
            parameter, vocab, dimension = model.encoder.embedding.weight, source_vocab, config.num_embed_source
        else:
            parameter, vocab, dimension = model.decoder.embedding.weight, target_vocab, config.num_embed_target
            if "source" in loads and parameter is model.encoder.embedding.weight:   # src_trg tying: one matrix
                keep_ids = loads["source"].ids
        loads[side] = load_embedding_file(parameter, side, path, vocab, dimension, subword is not None, keep_ids)
    return loads
