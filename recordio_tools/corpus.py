"""Parallel text corpora -> vocabularies, subword models and RecordIO-protobuf files (what `prepare` is made of)."""

import collections
import itertools
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from seq2seq.constants import UNK_ID
from seq2seq.data import recordio_batch
from seq2seq.data.recordio_codec import RecordWriter
from seq2seq.data.subword import (SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE, SubwordModel, SubwordModels,
                                  SubwordTrainingConfig, train_subword_model)
from seq2seq.data.vocab import Vocabulary, vocabulary_from_counts
from recordio_tools.line_blocks import DEFAULT_BLOCK_BYTES, LineBlocks, iter_blocks, iter_parallel_blocks
from recordio_tools.progress import Progress
from recordio_tools.token_ids import TokenIdMapper, count_tokens


@dataclass
class EncodeStats:
    """What one conversion wrote: pairs, skipped pairs (a side without tokens), token counts."""

    output: str
    pairs_written: int = 0
    pairs_skipped: int = 0
    source_tokens: int = 0
    source_unknown: int = 0
    target_tokens: int = 0
    target_unknown: int = 0

    @property
    def unknown_rate(self) -> float:
        """Share of written tokens (both sides) mapped to <unk>, 0..1."""
        tokens = self.source_tokens + self.target_tokens
        return (self.source_unknown + self.target_unknown) / tokens if tokens else 0.0


def count_file_tokens(path, counts: Counter = None, progress: Progress = None) -> Counter:
    """Token counts of every line of a text file (added to `counts` when given)."""
    counts = Counter() if counts is None else counts
    with LineBlocks(path) as lines:
        for block in iter_blocks(lines):
            count_tokens(block, counts)
            if progress:
                progress.update(lines.fraction_done, lines.lines_taken)
    return counts


def _count_with_progress(path, progress_enabled: bool) -> Counter:
    return count_file_tokens(path, progress=Progress(f"counting {path}", progress_enabled))


def _count_both(source_path, target_path, progress_enabled: bool, jobs: int):
    """(source counts, target counts). With jobs > 1 a forked worker counts the target file meanwhile."""
    if jobs <= 1:
        return (_count_with_progress(source_path, progress_enabled),
                _count_with_progress(target_path, progress_enabled))
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        target_counts = pool.submit(_count_with_progress, target_path, progress_enabled)
        source_counts = _count_with_progress(source_path, progress_enabled)
        return source_counts, target_counts.result()


def build_vocabularies(source_path, target_path, min_count=1, max_size=50000, joint=False,
                       progress_enabled=True, jobs: int = None):
    """(source vocab, target vocab) of two training files; one shared vocab when `joint`.

    `jobs` (default: one per usable core): with more than one, the two files are counted at the same time.
    Ties in frequency keep the order of first appearance, source file first, as when counting in one pass.
    """
    jobs = default_jobs() if jobs is None else max(1, jobs)
    source_counts, target_counts = _count_both(source_path, target_path, progress_enabled, jobs)
    if joint:
        source_counts.update(target_counts)   # new target tokens follow the source's, in first-seen order
        vocabulary = vocabulary_from_counts(source_counts, min_count, max_size)
        return vocabulary, vocabulary
    return (vocabulary_from_counts(source_counts, min_count, max_size),
            vocabulary_from_counts(target_counts, min_count, max_size))


def _drop_empty(ids, lengths, keep):
    return ids[np.repeat(keep, lengths)], lengths[keep]


@dataclass(frozen=True)
class EncodedBlock:
    """One block of line pairs turned into framed records, with its counts."""

    data: bytes
    pairs: int
    skipped: int
    source_tokens: int
    source_unknown: int
    target_tokens: int
    target_unknown: int


class _WordMapper:
    """Whitespace tokens -> vocabulary ids (SageMaker's rule)."""

    def __init__(self, vocabulary: Vocabulary):
        self._mapper = TokenIdMapper(vocabulary.token_to_id())

    def map_block(self, block: bytes):
        return self._mapper.map_block(block)


class _SubwordMapper:
    """Raw text -> SentencePiece ids, which are the vocabulary ids of a subword setup."""

    def __init__(self, model: SubwordModel):
        self._model = model

    def map_block(self, block: bytes):
        return self._model.encode_block(block)


def text_mapper(vocabulary: Vocabulary, subword: SubwordModel = None):
    """The block mapper of one side: subword pieces when a model is given, else whitespace tokens."""
    return _SubwordMapper(subword) if subword is not None else _WordMapper(vocabulary)


class BlockEncoder:
    """(source block, target block, first line) -> EncodedBlock; pairs with an empty side are dropped."""

    def __init__(self, source_mapper, target_mapper):
        self.source_mapper = source_mapper
        self.target_mapper = target_mapper

    def __call__(self, source_block: bytes, target_block: bytes, first_line: int) -> EncodedBlock:
        source_ids, source_lengths = self.source_mapper.map_block(source_block)
        target_ids, target_lengths = self.target_mapper.map_block(target_block)
        keep = (source_lengths > 0) & (target_lengths > 0)
        skipped = int(len(keep) - np.count_nonzero(keep))
        if skipped:
            source_ids, source_lengths = _drop_empty(source_ids, source_lengths, keep)
            target_ids, target_lengths = _drop_empty(target_ids, target_lengths, keep)
        data = recordio_batch.encode_records(source_ids, source_lengths, target_ids, target_lengths,
                                             first_pair=first_line)
        return EncodedBlock(data, len(source_lengths), skipped, len(source_ids),
                            int(np.count_nonzero(source_ids == UNK_ID)), len(target_ids),
                            int(np.count_nonzero(target_ids == UNK_ID)))


_WORKER_ENCODER = None


def _start_worker(encoder: BlockEncoder) -> None:
    global _WORKER_ENCODER
    _WORKER_ENCODER = encoder


def _encode_in_worker(source_block: bytes, target_block: bytes, first_line: int) -> EncodedBlock:
    return _WORKER_ENCODER(source_block, target_block, first_line)


def default_jobs() -> int:
    """Worker processes for encoding: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _encoded_blocks(source: LineBlocks, target: LineBlocks, encoder: BlockEncoder, jobs: int):
    """EncodedBlocks in input order. With jobs > 1 and more than one block of input, `jobs` forked worker
    processes encode while this one reads and writes; at most 2 * jobs blocks are in flight (flat memory)."""
    blocks = iter_parallel_blocks(source, target)
    first = next(blocks, None)
    if first is None:
        return
    second = next(blocks, None)
    line = 0
    if second is None or jobs <= 1:
        for source_block, target_block, count in itertools.chain([first], [second] if second else [], blocks):
            yield encoder(source_block, target_block, line)
            line += count
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_worker,
                             initargs=(encoder,)) as pool:
        pending = collections.deque()
        try:
            for source_block, target_block, count in itertools.chain([first, second], blocks):
                pending.append(pool.submit(_encode_in_worker, source_block, target_block, line))
                line += count
                if len(pending) >= 2 * jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def encode_corpus(source_path, target_path, source_vocab: Vocabulary, target_vocab: Vocabulary,
                  output_path, progress_enabled=True, subword: SubwordModels = None,
                  jobs: int = None, block_bytes: int = DEFAULT_BLOCK_BYTES) -> EncodeStats:
    """Write one record per line pair to `output_path` (atomically); pairs with an empty side are skipped.

    With `subword`, lines are raw text cut into SentencePiece pieces; else whitespace tokens looked up in the
    vocabularies. `jobs` worker processes encode blocks of lines (default: one per usable core).
    """
    stats = EncodeStats(output=os.fspath(output_path))
    encoder = BlockEncoder(text_mapper(source_vocab, subword.source if subword else None),
                           text_mapper(target_vocab, subword.target if subword else None))
    progress = Progress(f"encoding {output_path}", progress_enabled)
    jobs = default_jobs() if jobs is None else max(1, jobs)
    with LineBlocks(source_path, block_bytes) as source, LineBlocks(target_path, block_bytes) as target, \
            RecordWriter(output_path) as writer:
        for block in _encoded_blocks(source, target, encoder, jobs):
            writer.write_encoded(block.data, block.pairs)
            stats.pairs_skipped += block.skipped
            stats.source_tokens += block.source_tokens
            stats.target_tokens += block.target_tokens
            stats.source_unknown += block.source_unknown
            stats.target_unknown += block.target_unknown
            progress.update(source.fraction_done, source.lines_taken)
    stats.pairs_written = writer.count
    return stats


def train_subword_models(source_path, target_path, config: SubwordTrainingConfig, joint: bool,
                         output_dir) -> SubwordModels:
    """SentencePiece models of the raw training text, written as subword.src.model / subword.trg.model."""
    source_file = os.path.join(output_dir, SUBWORD_SOURCE_FILE)
    target_file = os.path.join(output_dir, SUBWORD_TARGET_FILE)
    if joint:
        model = train_subword_model([source_path, target_path], config, source_file)
        model.save(target_file)
        return SubwordModels(model, model)
    return SubwordModels(train_subword_model([source_path], config, source_file),
                         train_subword_model([target_path], config, target_file))
