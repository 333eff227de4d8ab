"""The machine's FP32 ceiling for the benchmark's model: one MXNet FullyConnected of the output layer's shape.

The output layer of the reference model is about three quarters of its arithmetic, so the rate oneDNN
reaches on a ``(tokens, hidden) x (vocab, hidden)`` product, forward and backward (gradients of the
input and of the weight: three products of ``2 * tokens * vocab * hidden`` FLOPs), is the practical
ceiling for the engines that train it. Run it in its own process so that it gets the benchmark's
OpenMP settings (``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY``).

Usage: ``python -m bench.fp32_ceiling --tokens 860 --vocab 18726 --hidden 512 [--repeats 10]``
(prints one JSON object).
"""
import argparse
import json
import os
import statistics
import sys
import time


def measure(tokens: int, vocab: int, hidden: int, repeats: int = 10, warmup: int = 2, seed: int = 1) -> dict:
    """GFLOP/s of forward and of forward+backward of ``FullyConnected`` at that shape (medians)."""
    import mxnet as mx
    from mxnet import autograd

    mx.random.seed(seed)
    x = mx.nd.random.uniform(-1, 1, shape=(tokens, hidden))
    w = mx.nd.random.uniform(-0.05, 0.05, shape=(vocab, hidden))
    b = mx.nd.zeros((vocab,))
    for a in (x, w, b):
        a.attach_grad()
    head = mx.nd.random.uniform(-1, 1, shape=(tokens, vocab))
    mx.nd.waitall()
    product = 2.0 * tokens * vocab * hidden
    forward_s, step_s = [], []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        y = mx.nd.FullyConnected(x, w, b, num_hidden=vocab)
        y.wait_to_read()
        middle = time.perf_counter()
        with autograd.record():
            y = mx.nd.FullyConnected(x, w, b, num_hidden=vocab)
        y.backward(head)
        mx.nd.waitall()
        end = time.perf_counter()
        if i >= warmup:
            forward_s.append(middle - start)
            step_s.append(end - middle)
    forward = [product / t / 1e9 for t in forward_s]
    step = [3 * product / t / 1e9 for t in step_s]
    return {"shape": {"tokens": tokens, "vocab": vocab, "hidden": hidden}, "repeats": repeats,
            "forward_gflops": statistics.median(forward), "forward_gflops_max": max(forward),
            "forward_backward_gflops": statistics.median(step), "forward_backward_gflops_max": max(step),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "mxnet": mx.__version__}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=64 * 13, help="rows: target tokens of a batch")
    parser.add_argument("--vocab", type=int, required=True, help="output classes (target vocabulary)")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.tokens, args.vocab, args.hidden, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
