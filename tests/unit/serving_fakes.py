"""A deterministic stand-in for seq2seq.inference.translator.Translator, for serving tests.

`ReversingTranslator` has the Translator interface (source_vocab, target_vocab, max_seq_len_source,
default_options, translate_ids, translate_text) and returns the source tokens reversed (in their
original order when beam_size == 1, so tests can see options arrive), cut to max_output_length,
with a one-hot attention row per output token. A source holding the token "boom" raises
RuntimeError (an internal failure); overlapping calls raise too, because the real Translator must
be driven from one thread at a time.
"""
import threading
import time
from typing import List

import numpy as np

from seq2seq.constants import RESERVED_SYMBOLS
from seq2seq.data.vocab import Vocabulary
from seq2seq.inference.translator import DecodeOptions, Translation

WORDS = ["ein", "hund", "läuft", "im", "park", "a", "dog", "runs", "in", "the", "boom"]
FAIL_TOKEN = "boom"


def make_vocabulary(words=WORDS) -> Vocabulary:
    tokens = list(RESERVED_SYMBOLS) + list(words)
    return Vocabulary({token: index for index, token in enumerate(tokens)})


class ReversingTranslator:
    """Fake translator; `calls` records (number of sources, options) of every translate_ids call."""

    def __init__(self, max_seq_len_source: int = 6, delay_s: float = 0.0):
        self.source_vocab = make_vocabulary()
        self.target_vocab = make_vocabulary()
        self.max_seq_len_source = max_seq_len_source
        self.default_options = DecodeOptions(beam_size=5)
        self.delay_s = delay_s
        self.calls = []
        self._busy = threading.Lock()

    def translate_text(self, sentences: List[str], options: DecodeOptions = None) -> List[Translation]:
        return self.translate_ids([self.source_vocab.encode(s.split()) for s in sentences], options)

    def translate_ids(self, sources: List[List[int]], options: DecodeOptions = None) -> List[Translation]:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("translate_ids called concurrently")
        try:
            options = options or self.default_options
            self.calls.append((len(sources), options))
            if self.delay_s:
                time.sleep(self.delay_s)
            return [self._translate_one(list(source), options) for source in sources]
        finally:
            self._busy.release()

    def _translate_one(self, source: List[int], options: DecodeOptions) -> Translation:
        fail_id = self.source_vocab.get(FAIL_TOKEN)
        if fail_id in source:
            raise RuntimeError("the fake model exploded")
        truncated = len(source) > self.max_seq_len_source
        source = source[:self.max_seq_len_source]
        positions = list(range(len(source)))
        if options.beam_size > 1:
            positions.reverse()
        if options.max_output_length is not None:
            positions = positions[:options.max_output_length]
        tokens = self.source_vocab.decode([source[p] for p in positions], strip_special=False)
        target_ids = self.target_vocab.encode(tokens)
        attention = None
        if options.attention_matrix:
            attention = np.zeros((len(positions), len(source)), dtype=np.float32)
            attention[np.arange(len(positions)), positions] = 1.0
        return Translation(target_ids, tokens, -float(len(tokens)), attention, truncated)
