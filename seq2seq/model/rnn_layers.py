"""Construction of MXNet's fused RNN layers (one layer per block, time-major `TNC` layout)."""

from mxnet.gluon import rnn


def fused_rnn_layer(cell_type: str, num_hidden: int, input_size: int = 0, prefix: str = None):
    """One fused LSTM or GRU layer; input `(seq_len, batch, input_size)`, output `(seq_len, batch, num_hidden)`."""
    layer_class = rnn.LSTM if cell_type == "lstm" else rnn.GRU
    return layer_class(num_hidden, num_layers=1, layout="TNC", input_size=input_size, prefix=prefix)
