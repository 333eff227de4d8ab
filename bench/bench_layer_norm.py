"""Cost of `layer_normalization=true` on the reference model (embeddings 256, bi-LSTM encoder 512 in total,
LSTM decoder 512, MLP attention, vocabularies of 8,000): training updates/s and target tokens/s (synthetic
batches of 64 sentence pairs, 20 source and 20 target tokens, Adam, one model program forward and backward per
update, in this process) with and without input feeding, and single-sentence decoding time (beam 5, 20 source
tokens, at most 30 output tokens), each with and without layer normalisation.

Runs are interleaved (plain, layer-normalised, repeated), medians over `--repeats`; the load average before each
run is recorded. Results: bench/results/layer-norm.json and a printed table.

Usage: ``python -m bench.bench_layer_norm [--repeats 3] [--updates 5] [--sentences 5]``
"""
import argparse
import os
import statistics
import time
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from bench.results_io import save_results
from seq2seq.inference.search import beam_search
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel
from seq2seq.training.loss import MaskedCrossEntropy

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "layer-norm.json"
VOCAB, BATCH, LENGTH = 8000, 64, 20


def reference_model(layer_normalization: bool, input_feeding: bool) -> Seq2SeqModel:
    config = ModelConfig(source_vocab_size=VOCAB, target_vocab_size=VOCAB, num_embed_source=256,
                         num_embed_target=256, rnn_num_hidden=512, input_feeding=input_feeding,
                         layer_normalization=layer_normalization, max_seq_len_source=50, max_seq_len_target=50)
    mx.random.seed(1)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(magnitude=2.34), mx.cpu())
    model.hybridize()
    return model


def time_training(model, updates: int) -> dict:
    rng = np.random.RandomState(0)
    source = mx.nd.array(rng.randint(4, VOCAB, (BATCH, LENGTH)))
    target = mx.nd.array(rng.randint(4, VOCAB, (BATCH, LENGTH)))
    labels = mx.nd.array(rng.randint(4, VOCAB, (BATCH, LENGTH)))
    length = mx.nd.full((BATCH,), LENGTH)
    loss = MaskedCrossEntropy(0.1)
    trainer = gluon.Trainer(model.collect_params(), "adam", {"learning_rate": 1e-4})

    def update():
        with autograd.record():
            total, _, _ = loss(model(source, length, target), labels)
        total.backward()
        trainer.step(BATCH)
        mx.nd.waitall()
    update()                                                  # warm-up: builds the programs
    start = time.perf_counter()
    for _ in range(updates):
        update()
    seconds = time.perf_counter() - start
    return {"updates_per_s": updates / seconds, "target_tokens_per_s": updates * BATCH * LENGTH / seconds}


def time_decoding(model, sentences: int) -> dict:
    rng = np.random.RandomState(1)
    times = []
    for i in range(sentences + 1):
        source = mx.nd.array(rng.randint(4, VOCAB, (1, LENGTH)))
        start = time.perf_counter()
        beam_search(model, source, mx.nd.array([LENGTH]), np.array([30]), beam_size=5)
        if i:                                                 # the first builds the programs
            times.append(1000 * (time.perf_counter() - start))
    return {"sentence_ms": statistics.median(times)}


def run(args) -> dict:
    runs = {}
    for repeat in range(args.repeats):
        for input_feeding in (False, True):
            for layer_normalization in (False, True):
                key = f"{'if' if input_feeding else 'noif'}-{'ln' if layer_normalization else 'plain'}"
                load = os.getloadavg()[0]
                model = reference_model(layer_normalization, input_feeding)
                measured = dict(time_training(model, args.updates), load_before=load)
                if not input_feeding:
                    measured.update(time_decoding(model, args.sentences))
                runs.setdefault(key, []).append(measured)
                print(repeat, key, measured, flush=True)
    medians = {key: {name: statistics.median(r[name] for r in rs) for name in rs[0] if name != "load_before"}
               for key, rs in runs.items()}
    for mode in ("noif", "if"):
        medians[f"{mode}-ln"]["training_slowdown"] = (medians[f"{mode}-plain"]["updates_per_s"]
                                                      / medians[f"{mode}-ln"]["updates_per_s"])
    medians["noif-ln"]["decoding_slowdown"] = medians["noif-ln"]["sentence_ms"] / medians["noif-plain"]["sentence_ms"]
    return {"benchmark": "layer_normalization cost, reference model", "repeats": args.repeats,
            "updates_per_run": args.updates, "batch": BATCH, "length": LENGTH, "vocab": VOCAB,
            "threads": os.environ.get("OMP_NUM_THREADS"), "medians": medians, "runs": runs,
            "cpu_count": os.cpu_count()}


def print_table(result: dict) -> None:
    print(f"{'variant':<12} {'updates/s':>10} {'tokens/s':>10} {'sentence ms':>12} {'slowdown':>9}")
    for key, m in result["medians"].items():
        print(f"{key:<12} {m['updates_per_s']:>10.3f} {m['target_tokens_per_s']:>10.0f} "
              f"{m.get('sentence_ms', float('nan')):>12.1f} {m.get('training_slowdown', 1.0):>9.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=5, help="timed updates per run (after one warm-up)")
    parser.add_argument("--sentences", type=int, default=5, help="timed single-sentence decodes per run")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    return save_results(args.output, run(args), print_table)


if __name__ == "__main__":
    raise SystemExit(main())
