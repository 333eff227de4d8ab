"""`make demo`: the whole product on a small synthetic task, locally, in a few minutes.

1. generate the task (demo.synthetic_task) as raw text files ("The big red dog sees a small cat.");
2. `python -m recordio_tools prepare --subword bpe` -> train.rec, val.rec, vocab.src.json,
   vocab.trg.json, subword.src.model, subword.trg.model;
3. lay out a local /opt/ml tree (demo_run/opt_ml) with a hyperparameters.json;
4. `container/train` with SAGEMAKER_BASE_DIR pointing at that tree;
5. `container/serve` on a free loopback port; raw text in and out through JSON /invocations on unseen
   sentences (and RecordIO-protobuf ids, which must agree);
6. source -> translation examples and sacreBLEU (cased, 13a); SIGTERM stops the server.

`--word-level` runs the same steps on whitespace-tokenized text with word vocabularies (Amazon's path).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import List

import sacrebleu

from demo import synthetic_task
from demo.sagemaker_tree import build_training_tree
from demo.server_process import REPO_ROOT, ServerProcess, idle_thread_settings, tool_environment
from seq2seq import client
from seq2seq.data.subword import find_subword_models
from seq2seq.data.vocab import Vocabulary

# A small model; the task is learnt after a few hundred updates. Amazon's names, plus ours
# (devices, seed, label_smoothing, log_frequency_num_batches).
DEMO_HYPERPARAMETERS = {
    "num_embed_source": 32,
    "num_embed_target": 32,
    "rnn_num_hidden": 64,
    "rnn_attention_type": "mlp",
    "batch_size": 64,
    "optimizer_type": "adam",
    "learning_rate": 0.003,
    "max_seq_len_source": 20,
    "max_seq_len_target": 20,
    "bucket_width": 5,
    "checkpoint_frequency_num_batches": 100,
    "checkpoint_threshold": 3,
    "max_num_batches": 600,
    "optimized_metric": "perplexity",
    "bleu_sample_size": 0,
    "beam_size": 5,
    "label_smoothing": 0.1,
    "log_frequency_num_batches": 50,
    "devices": "cpu",
    "seed": 1,
}
REQUEST_SIZE = 25  # sentences per JSON request
SUBWORD_KIND, SUBWORD_VOCAB_SIZE = "bpe", 400  # ~130 words a side: pieces are then whole words (and ".")


def banner(step: str) -> None:
    print(f"\n=== {step}", flush=True)


def run_logged(command: List[str], env: dict, log_path: str, prefix: str) -> int:
    """Run `command`, echoing each output line with `prefix` and copying it to `log_path`."""
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", bufsize=1)
        for line in process.stdout:
            log.write(line)
            if line.strip():
                print(f"{prefix}{line.rstrip()}", flush=True)
        return process.wait()


def read_lines(path: str) -> List[str]:
    with open(path, encoding="utf-8") as stream:
        return [line.rstrip("\n") for line in stream]


def prepare_data(work_dir: str, train_pairs: int, raw: bool = True) -> dict:
    """Steps 1-2: the corpus as text, then RecordIO via recordio_tools; returns the split paths."""
    kind = "raw text" if raw else "whitespace tokens"
    banner(f"1/5 generating the synthetic task ({train_pairs} training pairs, {kind})")
    corpus_dir = os.path.join(work_dir, "corpus")
    paths = synthetic_task.write_corpus(corpus_dir, train=train_pairs, validation=300, test=100, raw=raw)
    example_source, example_target = read_lines(paths["train"][0])[0], read_lines(paths["train"][1])[0]
    print(f"  e.g. {example_source!r} -> {example_target!r}")
    banner("2/5 python -m recordio_tools prepare" + (f" --subword {SUBWORD_KIND}" if raw else ""))
    command = [sys.executable, "-m", "recordio_tools", "prepare",
               "--train-source", paths["train"][0], "--train-target", paths["train"][1],
               "--val-source", paths["val"][0], "--val-target", paths["val"][1],
               "--output", os.path.join(work_dir, "prepared")]
    if raw:
        command += ["--subword", SUBWORD_KIND, "--subword-vocab-size", str(SUBWORD_VOCAB_SIZE)]
    print("  " + " ".join(os.path.relpath(part) if os.path.isabs(part) else part for part in command[1:]))
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    return paths


def train(base_dir: str, work_dir: str, hyperparameters: dict) -> float:
    """Steps 3-4: the /opt/ml tree and `container/train`; returns the training seconds."""
    banner(f"3/5 local /opt/ml tree: {os.path.relpath(base_dir)}")
    build_training_tree(base_dir, os.path.join(work_dir, "prepared"), hyperparameters)
    print("  input/config/hyperparameters.json: " + ", ".join(f"{k}={v}" for k, v in hyperparameters.items()))
    banner("4/5 container/train (SAGEMAKER_BASE_DIR=" + os.path.relpath(base_dir) + ")")
    started = time.monotonic()
    code = run_logged([os.path.join(REPO_ROOT, "container", "train")], tool_environment(base_dir),
                      os.path.join(work_dir, "train.log"), "  train | ")
    seconds = time.monotonic() - started
    if code != 0:
        failure = os.path.join(base_dir, "output", "failure")
        reason = open(failure, encoding="utf-8").read() if os.path.exists(failure) else "(no failure file)"
        raise SystemExit(f"training failed with exit code {code}: {reason.strip()}")
    print(f"  trained in {seconds:.0f} s; model: {os.path.relpath(os.path.join(base_dir, 'model'))} "
          f"({', '.join(sorted(os.listdir(os.path.join(base_dir, 'model'))))})")
    return seconds


def translate_test_set(server: ServerProcess, base_dir: str, sources: List[str]) -> List[str]:
    """JSON requests of REQUEST_SIZE sentences, plus one RecordIO-protobuf request that must agree."""
    hypotheses = []
    for start in range(0, len(sources), REQUEST_SIZE):
        hypotheses += client.translate(sources[start:start + REQUEST_SIZE], server.url)
    print(f"  application/json: {len(sources)} sentences in {-(-len(sources) // REQUEST_SIZE)} requests")
    model_dir = os.path.join(base_dir, "model")
    sample = sources[:10]
    subword = find_subword_models(model_dir)
    if subword is not None:             # the client cuts the text into ids itself, with the model's pieces
        target_ids = client.translate_ids([subword.source.encode_text(s)[0] for s in sample], server.url)
        via_protobuf = [subword.target.decode(ids.tolist()) for ids in target_ids]
    else:
        source_vocab = Vocabulary.load(os.path.join(model_dir, "vocab.src.json"))
        target_vocab = Vocabulary.load(os.path.join(model_dir, "vocab.trg.json"))
        target_ids = client.translate_ids([source_vocab.encode(s.split()) for s in sample], server.url)
        via_protobuf = [" ".join(target_vocab.decode(ids.tolist())) for ids in target_ids]
    agree = sum(a == b for a, b in zip(via_protobuf, hypotheses))
    print(f"  application/x-recordio-protobuf: {len(sample)} sentences as ids; "
          f"{agree}/{len(sample)} identical to the JSON answers")
    return hypotheses


def show_one_request(server: ServerProcess, sentence: str) -> None:
    """What `curl` would send and get back, with the attention matrix's pieces."""
    body = {"instances": [{"data": sentence}], "configuration": {"attention_matrix": "true"}}
    print(f"  curl -s {server.url}/invocations -H 'Content-Type: application/json' -d '{json.dumps(body)}'")
    prediction = client.translate_predictions([sentence], server.url, {"attention_matrix": "true"})[0]
    print(f"  -> target: {prediction['target']!r}")
    if "source_tokens" in prediction:
        matrix = prediction["matrix"]
        print(f"     source_tokens: {prediction['source_tokens']}\n     target_tokens: {prediction['target_tokens']}"
              f"\n     matrix: {len(matrix)} x {len(matrix[0]) if matrix else 0}")


def serve_and_evaluate(base_dir: str, work_dir: str, paths: dict) -> dict:
    """Step 5: serve the model, translate the unseen test sentences, score them, stop the server."""
    banner("5/5 container/serve + /invocations")
    server = ServerProcess(base_dir, os.path.join(work_dir, "serve.log"), workers=1, env=idle_thread_settings())
    ready = server.start()
    print(f"  serving on {server.url} (ready after {ready:.1f} s; log {os.path.relpath(server.log_path)})")
    try:
        sources, references = read_lines(paths["test"][0]), read_lines(paths["test"][1])
        show_one_request(server, sources[0])
        started = time.monotonic()
        hypotheses = translate_test_set(server, base_dir, sources)
        seconds = time.monotonic() - started
        raw = find_subword_models(os.path.join(base_dir, "model")) is not None
    finally:
        code = server.stop()
    print(f"  SIGTERM -> serve exited with code {code}")
    # Raw text: sacreBLEU's standard settings (cased, 13a); tokens: scored as they are.
    bleu = sacrebleu.corpus_bleu(hypotheses, [references]) if raw else \
        sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none")
    exact = sum(h == r for h, r in zip(hypotheses, references))
    print("\n  source -> translation (reference)")
    for source, hypothesis, reference in list(zip(sources, hypotheses, references))[:8]:
        mark = "ok" if hypothesis == reference else "!!"
        print(f"  [{mark}] {source}\n       -> {hypothesis}" + ("" if mark == "ok" else f"\n          ({reference})"))
    return {"bleu": bleu.score, "exact": exact, "total": len(sources), "seconds": seconds, "server_exit": code}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", default=os.path.join(REPO_ROOT, "demo_run"),
                        help="scratch directory, replaced on every run (default: demo_run/)")
    parser.add_argument("--train-pairs", type=int, default=8000, help="training pairs (default 8000)")
    parser.add_argument("--max-num-batches", type=int, default=DEMO_HYPERPARAMETERS["max_num_batches"],
                        help="cap on training updates (default %(default)s)")
    parser.add_argument("--word-level", action="store_true",
                        help="whitespace-tokenized text and word vocabularies instead of raw text and subwords")
    args = parser.parse_args(argv)
    started = time.monotonic()
    work_dir = os.path.abspath(args.work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    base_dir = os.path.join(work_dir, "opt_ml")
    hyperparameters = dict(DEMO_HYPERPARAMETERS, max_num_batches=args.max_num_batches)
    try:
        paths = prepare_data(work_dir, args.train_pairs, raw=not args.word_level)
        train_seconds = train(base_dir, work_dir, hyperparameters)
        result = serve_and_evaluate(base_dir, work_dir, paths)
    except (RuntimeError, OSError, subprocess.CalledProcessError, client.ServerError) as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    print(f"\nBLEU {result['bleu']:.1f} on {result['total']} unseen test sentences "
          f"({result['exact']} translated exactly); training {train_seconds:.0f} s, "
          f"translation {result['seconds']:.1f} s, whole demo {time.monotonic() - started:.0f} s")
    return 0 if result["server_exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
