"""The parameter initializer of a training job: `weight_init_type` for the weights, `rnn_h2h_init` for the
recurrent matrices.

* `xavier` (default) and `uniform` are MXNet's Xavier / Uniform, exactly as the job always built them;
* `gaussian`: zero-mean normal weights with standard deviation `weight_init_sigma` (MXNet's Normal);
* `rnn_h2h_init=orthogonal`: every hidden-to-hidden matrix (`..._h2h_weight`, `(gates * hidden, hidden)`, in the
  encoder's fused layers and the decoder's cells, plain or layer-normalised) gets one random orthogonal
  `(hidden, hidden)` block per gate (Saxe et al. 2014; Sockeye 1.x's `orthogonal_stacked`). MXNet's own
  `mx.init.Orthogonal` would orthogonalise the stacked `(4H, H)` matrix as a whole, which leaves each gate's block
  far from orthogonal.

Biases start at zero in every case: the model declares them with `init="zeros"`, which Gluon prefers to the
global initializer (no forget-gate bias offset, as before); layer-normalisation gains start at one.
"""

import mxnet as mx
import numpy as np

from ..hyperparameters import Hyperparameters

RECURRENT_WEIGHT_SUFFIX = "h2h_weight"


def initializer_for(hp: Hyperparameters) -> mx.init.Initializer:
    """The initializer of `hp` (see the module docstring); seeded by mx.random.seed."""
    if hp.weight_init_type == "uniform":
        weights = mx.init.Uniform(abs(hp.weight_init_scale))
    elif hp.weight_init_type == "gaussian":
        weights = mx.init.Normal(hp.weight_init_sigma)
    else:
        weights = mx.init.Xavier(rnd_type="uniform", factor_type=hp.xavier_factor_type,
                                 magnitude=hp.weight_init_scale)
    if hp.rnn_h2h_init == "orthogonal":
        return OrthogonalRecurrent(weights)
    return weights


def random_orthogonal(size: int) -> np.ndarray:
    """A `(size, size)` float64 orthogonal matrix drawn uniformly (Haar measure): the Q of the QR decomposition of
    a standard normal matrix from MXNet's generator, its columns' signs fixed by R's diagonal (Mezzadri 2007)."""
    gaussian = mx.nd.random.normal(0.0, 1.0, shape=(size, size), dtype="float64").asnumpy()
    q, r = np.linalg.qr(gaussian)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


class OrthogonalRecurrent(mx.init.Initializer):
    """Recurrent matrices (names ending in `h2h_weight`, shape `(gates * hidden, hidden)`) as `gates` stacked random
    orthogonal `(hidden, hidden)` blocks; every other weight from `others`."""

    def __init__(self, others: mx.init.Initializer):
        super().__init__(others=others.dumps())
        self.others = others

    def _init_weight(self, name, arr):
        if not str(name).endswith(RECURRENT_WEIGHT_SUFFIX):
            self.others._init_weight(name, arr)
            return
        rows, hidden = arr.shape
        if rows % hidden:
            raise ValueError(f"{name}: a recurrent matrix of shape {arr.shape} is not a stack of square gate blocks")
        blocks = [random_orthogonal(hidden) for _ in range(rows // hidden)]
        arr[:] = mx.nd.array(np.concatenate(blocks, axis=0), dtype=arr.dtype, ctx=arr.context)
