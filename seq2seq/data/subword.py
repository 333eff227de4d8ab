"""SentencePiece subwords: raw text <-> token ids, shared by recordio_tools, training and serving.

A subword model is trained so that its own ids *are* the vocabulary ids: `<pad>`=0, `<unk>`=1, `<s>`=2,
`</s>`=3 (SageMaker's reserved ids), then the pieces. The vocab JSON written beside it
(`vocab.src.json` / `vocab.trg.json`, Amazon's format) therefore maps every piece of the model to its
SentencePiece id, and records hold plain int32 ids that Amazon's own algorithm can train on.

Files: `subword.src.model` and `subword.trg.model` (the same bytes twice for a joint model) live in the
`prepare` output directory, the `vocab` channel and the model directory. A directory with one of the
two files but not the other, or with a model that does not match its vocab JSON, is an error.
"""

import io
import itertools
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..atomic_write import write_bytes
from ..constants import (BOS_ID, BOS_SYMBOL, EOS_ID, EOS_SYMBOL, PAD_ID, PAD_SYMBOL, SUBWORD_FILES,
                         SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE, UNK_ID, UNK_SYMBOL, VOCAB_SOURCE_FILE,
                         VOCAB_TARGET_FILE)
from ..errors import UserError
from .vocab import Vocabulary

MODEL_TYPES = ("unigram", "bpe")
WORD_BOUNDARY = "\u2581"            # "▁", SentencePiece's mark of a preceding space
MIN_VOCAB_SIZE = 8


@dataclass(frozen=True)
class SubwordTrainingConfig:
    """How `train_subword_model` runs SentencePiece.

    vocab_size counts every entry of the resulting vocabulary, the four reserved symbols included;
    on a small corpus the model may come out smaller (SentencePiece stops when nothing is left to merge).
    """

    model_type: str = "unigram"
    vocab_size: int = 8000
    character_coverage: float = 1.0
    input_sentence_size: int = 2_000_000      # lines sampled from large corpora for training
    max_sentence_length: int = 16384           # bytes; longer training lines are left out
    num_threads: int = 2
    seed: int = 13

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise UserError(f"subword model type {self.model_type!r}: expected one of {', '.join(MODEL_TYPES)}")
        if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int) \
                or self.vocab_size < MIN_VOCAB_SIZE:
            raise UserError(f"subword vocabulary size must be an integer >= {MIN_VOCAB_SIZE}, got {self.vocab_size!r}")
        if not 0.9 <= self.character_coverage <= 1.0:
            raise UserError(f"subword character coverage must be in [0.9, 1.0], got {self.character_coverage}")


def _processor(model_proto: bytes, source: str):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model_proto)
    except (RuntimeError, OSError, TypeError) as error:
        raise UserError(f"{source}: not a SentencePiece model ({error})") from None
    return processor


class SubwordModel:
    """A loaded SentencePiece model whose ids are vocabulary ids (see the module docstring).

    Picklable (it travels as its serialized model), so worker processes can encode with it.
    """

    def __init__(self, model_proto: bytes, source: str = "subword model"):
        self.model_proto = bytes(model_proto)
        self.source = source
        self._sp = _processor(self.model_proto, source)
        expected = (PAD_ID, PAD_SYMBOL), (UNK_ID, UNK_SYMBOL), (BOS_ID, BOS_SYMBOL), (EOS_ID, EOS_SYMBOL)
        size = self._sp.get_piece_size()
        for symbol_id, symbol in expected:
            if symbol_id >= size or self._sp.id_to_piece(symbol_id) != symbol:
                found = self._sp.id_to_piece(symbol_id) if symbol_id < size else "nothing"
                raise UserError(f"{source}: id {symbol_id} must be the reserved symbol {symbol!r}, found {found!r}; "
                                "train subword models with `python -m recordio_tools prepare --subword ...`")
        self.pieces: List[str] = [self._sp.id_to_piece(i) for i in range(size)]

    def __getstate__(self):
        return {"model_proto": self.model_proto, "source": self.source}

    def __setstate__(self, state):
        self.__init__(state["model_proto"], state["source"])

    @classmethod
    def load(cls, path) -> "SubwordModel":
        path = os.fspath(path)
        try:
            with open(path, "rb") as stream:
                return cls(stream.read(), source=path)
        except FileNotFoundError:
            raise UserError(f"subword model {path} does not exist") from None
        except OSError as error:
            raise UserError(f"cannot read subword model {path}: {error.strerror or error}") from None

    def save(self, path) -> None:
        write_bytes(path, self.model_proto)

    def __len__(self) -> int:
        return len(self.pieces)

    def __eq__(self, other) -> bool:
        return isinstance(other, SubwordModel) and self.model_proto == other.model_proto

    def vocabulary(self) -> Vocabulary:
        """The vocabulary in Amazon's format: reserved ids 0-3, then every piece at its SentencePiece id."""
        return Vocabulary({piece: index for index, piece in enumerate(self.pieces)}, source=self.source)

    def check_vocabulary(self, vocabulary: Vocabulary, vocabulary_source: str) -> None:
        """UserError unless `vocabulary` maps exactly this model's pieces to its ids."""
        if vocabulary.id_to_token == self.pieces:
            return
        if len(vocabulary) != len(self.pieces):
            raise UserError(f"{vocabulary_source} has {len(vocabulary)} entries but {self.source} has "
                            f"{len(self.pieces)} pieces; the two files come from different `prepare` runs")
        index = next(i for i, (a, b) in enumerate(zip(vocabulary.id_to_token, self.pieces)) if a != b)
        raise UserError(f"{vocabulary_source}: id {index} is {vocabulary.id_to_token[index]!r}, but {self.source} "
                        f"has {self.pieces[index]!r} there; the two files come from different `prepare` runs")

    # ----- text -> ids -----
    def encode_lines(self, lines: Sequence[str]) -> List[List[int]]:
        """Ids of each line (no <s> or </s>); whitespace-only lines give []."""
        if not lines:
            return []
        return self._sp.encode(list(lines), out_type=int)

    def encode_block(self, block: bytes) -> Tuple[np.ndarray, np.ndarray]:
        """A UTF-8 block of whole lines (each ending in "\\n") -> flat ids (t,) int64, ids per line (lines,)."""
        lines = block.decode("utf-8").split("\n")[:-1]
        encoded = self.encode_lines(lines)
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
        return ids, lengths

    def encode_text(self, text: str) -> Tuple[List[int], List[str]]:
        """(ids, pieces) of one sentence."""
        ids = self.encode_lines([text])[0]
        return ids, [self.pieces[i] for i in ids]

    def has_known_content(self, ids: Sequence[int]) -> bool:
        """False when every piece is <unk> or a bare word boundary: nothing of the text is known to the model."""
        return any(i != UNK_ID and self.pieces[i].strip(WORD_BOUNDARY) for i in ids)

    # ----- ids -> text -----
    def decode(self, ids: Sequence[int]) -> str:
        """Detokenised text of ids; <pad>, <s> and </s> are left out; UserError for an id outside the model."""
        ids = [int(i) for i in ids]
        for position, token_id in enumerate(ids):
            if not 0 <= token_id < len(self.pieces):
                raise UserError(f"token id {token_id} at position {position} is outside {self.source} "
                                f"({len(self.pieces)} pieces)")
        return self._sp.decode(ids)



def train_subword_model(inputs: Sequence[str], config: SubwordTrainingConfig, output_path) -> SubwordModel:
    """Train SentencePiece on the lines of `inputs` (raw text files) and write the model atomically."""
    import sentencepiece

    sentences = _TrainingSentences(inputs)
    writer = io.BytesIO()
    sentencepiece.set_random_generator_seed(config.seed)
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=writer, model_type=config.model_type,
            vocab_size=config.vocab_size,
            character_coverage=config.character_coverage, input_sentence_size=config.input_sentence_size,
            shuffle_input_sentence=True, max_sentence_length=config.max_sentence_length,
            num_threads=config.num_threads, hard_vocab_limit=False,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            pad_piece=PAD_SYMBOL, unk_piece=UNK_SYMBOL, bos_piece=BOS_SYMBOL, eos_piece=EOS_SYMBOL,
            minloglevel=2)
    except (RuntimeError, OSError) as error:
        if sentences.error is not None:
            raise sentences.error from None
        names = ", ".join(os.fspath(path) for path in inputs)
        raise UserError(f"SentencePiece could not train a {config.model_type} model of {config.vocab_size} "
                        f"entries on {names}: {str(error).strip()}") from None
    if sentences.error is not None:
        raise sentences.error
    if not sentences.lines_with_text:
        raise UserError(f"{', '.join(os.fspath(p) for p in inputs)}: no text to train a subword model on")
    model = SubwordModel(writer.getvalue(), source=os.fspath(output_path))
    model.save(output_path)
    return model


class _TrainingSentences:
    """The lines of text files for SentencePiece (gzip, newlines and UTF-8 errors as LineBlocks reads them)."""

    def __init__(self, paths: Sequence[str]):
        self.paths = [os.fspath(path) for path in paths]
        self.lines_with_text = 0
        self.error: Optional[UserError] = None     # raised after training: SentencePiece would swallow it

    def __iter__(self):
        from recordio_tools.line_blocks import LineBlocks, iter_blocks  # the reader of `prepare`, which trains

        try:
            for path in self.paths:
                with LineBlocks(path) as lines:
                    for block in iter_blocks(lines):
                        for line in block.decode("utf-8").split("\n")[:-1]:
                            if line.strip():
                                self.lines_with_text += 1
                                yield line
        except UserError as error:
            self.error = error


@dataclass(frozen=True)
class SubwordModels:
    """The source and target subword models of a directory (the same model twice when joint)."""

    source: SubwordModel
    target: SubwordModel

    @property
    def joint(self) -> bool:
        return self.source == self.target

    def save(self, directory) -> None:
        os.makedirs(directory, exist_ok=True)
        self.source.save(os.path.join(directory, SUBWORD_SOURCE_FILE))
        self.target.save(os.path.join(directory, SUBWORD_TARGET_FILE))

    def check_vocabularies(self, source_vocab: Vocabulary, target_vocab: Vocabulary, directory) -> None:
        self.source.check_vocabulary(source_vocab, os.path.join(os.fspath(directory), VOCAB_SOURCE_FILE))
        self.target.check_vocabulary(target_vocab, os.path.join(os.fspath(directory), VOCAB_TARGET_FILE))


def find_subword_models(directory) -> Optional[SubwordModels]:
    """The subword models in `directory`, None when it has neither file; UserError when only one is there."""
    paths = [os.path.join(os.fspath(directory), name) for name in SUBWORD_FILES]
    present = [os.path.isfile(path) for path in paths]
    if not any(present):
        return None
    if not all(present):
        missing = SUBWORD_FILES[present.index(False)]
        raise UserError(f"{directory}: {missing} is missing; a subword setup needs both {SUBWORD_SOURCE_FILE} "
                        f"and {SUBWORD_TARGET_FILE} (or neither, for word vocabularies)")
    return SubwordModels(SubwordModel.load(paths[0]), SubwordModel.load(paths[1]))


def load_checked_subword_models(directory, source_vocab: Vocabulary,
                                target_vocab: Vocabulary) -> Optional[SubwordModels]:
    """find_subword_models, checked against the directory's vocabularies."""
    models = find_subword_models(directory)
    if models is not None:
        models.check_vocabularies(source_vocab, target_vocab, directory)
    return models

