"""Builds small local /opt/ml trees with generated data for the tests."""

import json
import os

import numpy as np

from seq2seq.data.recordio_codec import RecordWriter
from seq2seq.data.vocab import build_vocabulary


def copy_task_pairs(num_pairs: int, vocab_words: int = 12, min_len: int = 2, max_len: int = 8, seed: int = 0,
                    reverse: bool = False):
    """Sentences of words w0..wN; the target is the source (reversed when `reverse`)."""
    rng = np.random.RandomState(seed)
    pairs = []
    for _ in range(num_pairs):
        words = [f"w{i}" for i in rng.randint(0, vocab_words, rng.randint(min_len, max_len + 1))]
        pairs.append((words, list(reversed(words)) if reverse else list(words)))
    return pairs


def write_tree(base_dir: str, hyperparameters: dict, train_pairs, validation_pairs, resource_config: dict = None):
    """Write vocab, train.rec, val.rec and hyperparameters.json under `base_dir` (a stand-in for /opt/ml).

    Returns (source_vocab, target_vocab)."""
    source_vocab = build_vocabulary(s for s, _ in train_pairs)
    target_vocab = build_vocabulary(t for _, t in train_pairs)
    data = os.path.join(base_dir, "input", "data")
    for channel in ("train", "validation", "vocab"):
        os.makedirs(os.path.join(data, channel), exist_ok=True)
    source_vocab.save(os.path.join(data, "vocab", "vocab.src.json"))
    target_vocab.save(os.path.join(data, "vocab", "vocab.trg.json"))
    for channel, name, pairs in (("train", "train.rec", train_pairs), ("validation", "val.rec", validation_pairs)):
        with RecordWriter(os.path.join(data, channel, name)) as writer:
            for source, target in pairs:
                writer.write(source_vocab.encode(source), target_vocab.encode(target))
    config = os.path.join(base_dir, "input", "config")
    os.makedirs(config, exist_ok=True)
    with open(os.path.join(config, "hyperparameters.json"), "w") as stream:
        json.dump({k: str(v) for k, v in hyperparameters.items()}, stream)
    if resource_config is not None:
        with open(os.path.join(config, "resourceconfig.json"), "w") as stream:
            json.dump(resource_config, stream)
    return source_vocab, target_vocab


TINY_MODEL = {
    "num_embed_source": 16, "num_embed_target": 16, "rnn_num_hidden": 32, "rnn_attention_num_hidden": 16,
    "batch_size": 16, "checkpoint_frequency_num_batches": 20, "max_seq_len_source": 12, "max_seq_len_target": 12,
    "bucket_width": 4, "learning_rate": 0.003, "log_frequency_num_batches": 10, "devices": "cpu",
}
