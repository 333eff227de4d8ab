"""A large synthetic parallel corpus for bench_recordio: Zipf-distributed words, Multi30k-like lengths.

Written with numpy in slices of lines, so generating a million pairs takes seconds and little memory.
"""

import numpy as np

def make_words(rng, count):
    """`count` distinct-ish ASCII/Latin words as one UTF-8 buffer, starts (count,), lengths (count,)."""
    words = []
    alphabet = list("abcdefghijklmnopqrstuvwxyz") + ["ä", "ö", "ü", "ß", "é"]
    lengths = rng.integers(1, 9, size=count)
    letters = rng.integers(0, len(alphabet), size=int(lengths.sum()))
    position = 0
    for index, length in enumerate(lengths.tolist()):
        words.append("".join(alphabet[letter] for letter in letters[position:position + length]) + str(index % 7))
        position += length
    encoded = [word.encode("utf-8") for word in words]
    sizes = np.array([len(word) for word in encoded], dtype=np.int64)
    return b"".join(encoded), np.cumsum(sizes) - sizes, sizes


def lines_bytes(rng, words, line_lengths, zipf_a=1.2):
    """UTF-8 text of lines with the given token counts (0 gives an empty line)."""
    buffer, starts, sizes = words
    tokens = int(line_lengths.sum())
    ids = (rng.zipf(zipf_a, size=tokens) - 1) % len(sizes)
    token_sizes = sizes[ids] + 1                                    # word + separator
    out_ends = np.cumsum(token_sizes)
    out_starts = out_ends - token_sizes
    empty = np.flatnonzero(line_lengths == 0)
    total = int(out_ends[-1]) if tokens else 0
    source = np.frombuffer(buffer, dtype=np.uint8)
    gather = np.repeat(starts[ids] - out_starts, token_sizes) + np.arange(total)
    out = source[np.minimum(gather, len(source) - 1)].copy()
    out[out_ends - 1] = ord(" ")
    line_ends = np.cumsum(line_lengths)
    nonempty_ends = line_ends[line_lengths > 0] - 1
    out[out_ends[nonempty_ends] - 1] = ord("\n")
    text = out.tobytes()
    if len(empty):                                                   # splice in empty lines
        pieces, previous = [], 0
        line_starts_in_text = np.concatenate([[0], out_ends[nonempty_ends]])
        nonempty_before = np.cumsum(line_lengths > 0) - (line_lengths > 0)
        for line in empty.tolist():
            cut = int(line_starts_in_text[nonempty_before[line]])
            pieces.append(text[previous:cut])
            pieces.append(b"\n")
            previous = cut
        pieces.append(text[previous:])
        text = b"".join(pieces)
    return text


def write_corpus(source_path, target_path, pairs, seed=0, slice_lines=100_000, empty_rate=0.001):
    """Write `pairs` aligned lines to each path; a side is empty with probability `empty_rate`."""
    rng = np.random.default_rng(seed)
    source_words = make_words(rng, 60_000)
    target_words = make_words(rng, 80_000)
    with open(source_path, "wb") as source, open(target_path, "wb") as target:
        for start in range(0, pairs, slice_lines):
            count = min(slice_lines, pairs - start)
            for out, words in ((source, source_words), (target, target_words)):
                lengths = np.clip(rng.poisson(12.5, size=count), 1, 60)
                lengths[rng.random(count) < empty_rate] = 0
                out.write(lines_bytes(rng, words, lengths))
