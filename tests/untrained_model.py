"""A randomly initialised model directory, for serving tests and the serving benchmarks."""

import mxnet as mx

from seq2seq.data.vocab import Vocabulary
from seq2seq.model_dir import write_model_dir
from seq2seq.model.config import ModelConfig
from seq2seq.model.seq2seq_model import Seq2SeqModel


def save_untrained_model(model_dir: str, source_vocab: Vocabulary, target_vocab: Vocabulary, seed: int = 0,
                         **model_overrides) -> ModelConfig:
    """Write a randomly initialised model directory (tiny by default): for serving tests and benchmarks."""
    settings = dict(num_embed_source=16, num_embed_target=16, rnn_num_hidden=32, rnn_attention_num_hidden=32,
                    max_seq_len_source=50, max_seq_len_target=50)
    settings.update(model_overrides)
    config = ModelConfig(source_vocab_size=len(source_vocab), target_vocab_size=len(target_vocab), **settings)
    mx.random.seed(seed)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(magnitude=2.34), mx.cpu())
    write_model_dir(model_dir, model, source_vocab, target_vocab, {"beam_size": 5})
    return config
