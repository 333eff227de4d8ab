"""Parallel text corpora -> vocabularies and RecordIO-protobuf files (what `prepare` is made of)."""

import os
from collections import Counter
from dataclasses import dataclass

import numpy as np

from seq2seq.constants import UNK_ID
from seq2seq.data.recordio_codec import RecordWriter
from seq2seq.data.vocab import Vocabulary, vocabulary_from_counts
from recordio_tools.line_blocks import LineBlocks, iter_blocks, iter_parallel_blocks
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


def build_vocabularies(source_path, target_path, min_count=1, max_size=50000, joint=False,
                       progress_enabled=True):
    """(source vocab, target vocab) of two training files; one shared vocab when `joint`."""
    source_counts = count_file_tokens(source_path, progress=Progress(f"counting {source_path}", progress_enabled))
    if joint:
        counts = count_file_tokens(target_path, source_counts, Progress(f"counting {target_path}", progress_enabled))
        vocabulary = vocabulary_from_counts(counts, min_count, max_size)
        return vocabulary, vocabulary
    target_counts = count_file_tokens(target_path, progress=Progress(f"counting {target_path}", progress_enabled))
    return (vocabulary_from_counts(source_counts, min_count, max_size),
            vocabulary_from_counts(target_counts, min_count, max_size))


def _drop_empty(ids, lengths, keep):
    return ids[np.repeat(keep, lengths)], lengths[keep]


def encode_corpus(source_path, target_path, source_vocab: Vocabulary, target_vocab: Vocabulary,
                  output_path, progress_enabled=True) -> EncodeStats:
    """Write one record per line pair to `output_path` (atomically); pairs with an empty side are skipped."""
    stats = EncodeStats(output=os.fspath(output_path))
    source_mapper = TokenIdMapper(source_vocab.token_to_id())
    target_mapper = TokenIdMapper(target_vocab.token_to_id())
    progress = Progress(f"encoding {output_path}", progress_enabled)
    with LineBlocks(source_path) as source, LineBlocks(target_path) as target, \
            RecordWriter(output_path) as writer:
        for source_block, target_block, _ in iter_parallel_blocks(source, target):
            source_ids, source_lengths = source_mapper.map_block(source_block)
            target_ids, target_lengths = target_mapper.map_block(target_block)
            keep = (source_lengths > 0) & (target_lengths > 0)
            if not keep.all():
                stats.pairs_skipped += int(len(keep) - np.count_nonzero(keep))
                source_ids, source_lengths = _drop_empty(source_ids, source_lengths, keep)
                target_ids, target_lengths = _drop_empty(target_ids, target_lengths, keep)
            writer.write_batch(source_ids, source_lengths, target_ids, target_lengths)
            stats.source_tokens += len(source_ids)
            stats.target_tokens += len(target_ids)
            stats.source_unknown += int(np.count_nonzero(source_ids == UNK_ID))
            stats.target_unknown += int(np.count_nonzero(target_ids == UNK_ID))
            progress.update(source.fraction_done, source.lines_taken)
    stats.pairs_written = writer.count
    return stats
