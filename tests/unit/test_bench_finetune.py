"""bench/bench_finetune.py: the runs take the base model's own hyperparameters, so the architecture gate passes."""

import json

from bench.bench_finetune import RUN_SETTINGS, base_hyperparameters, detokenise
from seq2seq.data.vocab import Vocabulary
from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.model_channel import architecture_differences
from seq2seq.model_dir import read_model_config
from tests.untrained_model import save_untrained_model


def test_base_hyperparameters_parse_and_match_the_stored_architecture(tmp_path):
    words = Vocabulary({t: i for i, t in enumerate(("<pad>", "<unk>", "<s>", "</s>", "a"))})
    save_untrained_model(str(tmp_path), words, words, weight_tying=True, num_embed_target=32,
                         rnn_attention_num_hidden=None)
    config = json.loads((tmp_path / "config.json").read_text())
    hp = parse_hyperparameters({"num_embed_source": 16, "num_embed_target": 32, "rnn_num_hidden": 32,
                                "weight_tying": True, "max_seq_len_source": 50, "max_seq_len_target": 50,
                                "momentum": None}).to_dict()
    config["hyperparameters"] = hp
    (tmp_path / "config.json").write_text(json.dumps(config))
    values = base_hyperparameters(tmp_path, {"learning_rate": "0.0005"})
    assert all(isinstance(v, str) for v in values.values())
    parsed = parse_hyperparameters(values)
    assert parsed.learning_rate == 0.0005 and parsed.weight_tying is True and parsed.rnn_attention_num_hidden is None
    assert parsed.checkpoint_frequency_num_batches == int(RUN_SETTINGS["checkpoint_frequency_num_batches"])
    assert architecture_differences(parsed, read_model_config(str(tmp_path))[0]) == []


def test_detokenise_undoes_moses_tokens_and_escapes(tmp_path):
    source = tmp_path / "tok.en"
    source.write_text("Parliament &apos;s role , he said &quot; no &quot; .\n")
    assert detokenise(source, tmp_path / "raw.en", "en") == 1
    assert (tmp_path / "raw.en").read_text() == "Parliament's role, he said \"no\".\n"
