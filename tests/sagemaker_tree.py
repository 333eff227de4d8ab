"""Builds small local /opt/ml trees with generated data for the tests, and runs the training job on them."""

import json
import os
import subprocess
import sys
import time

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
    write_hyperparameters(base_dir, hyperparameters)
    config = os.path.join(base_dir, "input", "config")
    if resource_config is not None:
        with open(os.path.join(config, "resourceconfig.json"), "w") as stream:
            json.dump(resource_config, stream)
    return source_vocab, target_vocab


TINY_MODEL = {
    "num_embed_source": 16, "num_embed_target": 16, "rnn_num_hidden": 32, "rnn_attention_num_hidden": 16,
    "batch_size": 16, "checkpoint_frequency_num_batches": 20, "max_seq_len_source": 12, "max_seq_len_target": 12,
    "bucket_width": 4, "learning_rate": 0.003, "log_frequency_num_batches": 10, "devices": "cpu",
}


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_hyperparameters(base_dir: str, hyperparameters: dict, json_quoted: bool = False) -> str:
    """Write input/config/hyperparameters.json with every value a string, as SageMaker does.

    json_quoted: encode each value a second time (`"\\"adam\\""`), as newer SageMaker SDKs do. Returns the path."""
    config = os.path.join(base_dir, "input", "config")
    os.makedirs(config, exist_ok=True)
    values = {k: json.dumps(v) if json_quoted else str(v) for k, v in hyperparameters.items()}
    path = os.path.join(config, "hyperparameters.json")
    with open(path, "w") as stream:
        json.dump(values, stream)
    return path


def job_environment(base_dir: str, **extra) -> dict:
    """The environment of a training-job subprocess: /opt/ml relocated to `base_dir`, the repo importable."""
    env = dict(os.environ, SAGEMAKER_BASE_DIR=base_dir, PYTHONPATH=REPO_ROOT, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def start_train_job(base_dir: str, log_path: str = None, **extra_env) -> subprocess.Popen:
    """Start `python -m seq2seq.train_job` on the tree; stdout and stderr go to `log_path` (default
    <base_dir>/job.log, appended)."""
    log = open(log_path or os.path.join(base_dir, "job.log"), "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "seq2seq.train_job"], cwd=REPO_ROOT,
                                env=job_environment(base_dir, **extra_env), stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def run_train_job(base_dir: str, timeout: float = 300, **extra_env) -> subprocess.CompletedProcess:
    """Run the training job to completion; returns the process with `stdout` (stderr merged into it)."""
    return subprocess.run([sys.executable, "-m", "seq2seq.train_job"], cwd=REPO_ROOT, timeout=timeout,
                          env=job_environment(base_dir, **extra_env), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def read_failure(base_dir: str):
    """The content of output/failure, or None when the job wrote none."""
    path = os.path.join(base_dir, "output", "failure")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return stream.read()


def wait_for_file(path: str, timeout: float, process: subprocess.Popen = None, poll: float = 0.05) -> bool:
    """Wait until `path` exists (True), `timeout` seconds pass or `process` exits (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        if process is not None and process.poll() is not None:
            return os.path.exists(path)
        time.sleep(poll)
    return False


def translation_pairs_bleu(translator, pairs, beam_size: int = 1) -> float:
    """Corpus BLEU (sacreBLEU, no tokenization) of the translator's output on word pairs."""
    import sacrebleu
    from seq2seq.inference.translator import DecodeOptions
    results = translator.translate_text([" ".join(s) for s, _ in pairs], DecodeOptions(beam_size=beam_size))
    hypotheses = [" ".join(r.target_tokens) for r in results]
    references = [" ".join(t) for _, t in pairs]
    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score
