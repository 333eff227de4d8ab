"""Benchmark helpers that need no engine: OpenNMT-py log parsing and vocabulary cleaning, model FLOPs, small-model data."""

import json

import pytest

from bench import onmt_peer, small_model
from bench.bench_train import reference_flops

ONMT_LOG = """\
[2026-12-01 11:04:43,353 INFO] Start training loop without validation...
[2026-12-01 11:05:27,832 INFO] Step 50/  150; acc: 5.0; ppl: 12872.6; xent: 9.5; lr: 0.00030; sents:    3200; \
bsz:  934/ 973/64; 105/109 tok/s;     44 sec;
[2026-12-01 11:06:34,697 INFO] Step 100/  150; acc: 11.5; ppl: 6158.5; xent: 8.7; lr: 0.00030; sents:    3200; \
bsz:  717/ 800/64; 600/ 640 tok/s;    111 sec;
[2026-12-01 11:07:34,697 INFO] Step 150/  150; acc: 12.5; ppl: 5158.5; xent: 8.5; lr: 0.00030; sents:    3200; \
bsz:  717/ 900/64; 700/ 750 tok/s;    171 sec;
"""


def test_onmt_step_lines_are_parsed():
    lines = onmt_peer.parse_step_lines(ONMT_LOG)
    assert [line.step for line in lines] == [50, 100, 150]
    assert lines[1].tgt_tokens_per_batch == 800 and lines[1].tgt_tokens_per_s == 640
    assert lines[2].sents == 3200 and lines[2].elapsed_s == 171


def test_onmt_speed_is_total_tokens_over_total_time_after_warmup():
    result = onmt_peer.summarise_training_log(ONMT_LOG, 50, 50, mean_target_len=13.0)
    tokens = 800 * 50 + 900 * 50
    seconds = 800 * 50 / 640 + 900 * 50 / 750
    assert result.measured_updates == 100
    assert result.target_tokens_per_s == pytest.approx(tokens / seconds)
    assert result.updates_per_s == pytest.approx(100 / seconds)
    assert result.samples_per_s == pytest.approx(6400 / seconds)
    with pytest.raises(RuntimeError, match="after the warm-up"):
        onmt_peer.summarise_training_log(ONMT_LOG, 50, 150, mean_target_len=13.0)


def test_vocabulary_lines_with_whitespace_tokens_are_dropped(tmp_path):
    path = tmp_path / "vocab.src"
    path.write_bytes("a\t10\n\u00a0\t3\nb\u2009c\t2\nd\t1\n".encode("utf-8"))
    assert onmt_peer.clean_vocabulary(path) == 2
    assert path.read_bytes().decode("utf-8") == "a\t10\nd\t1\n"


def test_onmt_settings_are_the_reference_model():
    settings = onmt_peer.reference_settings(300)
    assert (settings["encoder_type"], settings["hidden_size"], settings["word_vec_size"]) == ("brnn", 512, 256)
    assert settings["global_attention"] == "mlp" and settings["input_feed"] == 1
    assert settings["batch_size"] == 64 and settings["batch_type"] == "sents" and settings["num_workers"] == 0
    json.dumps(settings)  # written as YAML through JSON


def test_reference_flops_match_the_hand_count():
    # The hand count of the issue: ~105 MFLOP per target token with the 24.9k-word raw Multi30k vocabulary.
    flops = reference_flops(10214, 24900, 13.0, 13.4, input_feeding=True)
    assert flops["training_flops_per_target_token"] / 1e6 == pytest.approx(105, rel=0.03)
    assert 0.6 < flops["output_layer_share"] < 0.8
    without = reference_flops(10214, 24900, 13.0, 13.4, input_feeding=False)
    assert without["training_flops_per_target_token"] < flops["training_flops_per_target_token"]


def test_small_model_data(tmp_path):
    paths = small_model.generate_text(tmp_path)
    sources = paths["train_src"].read_text().splitlines()
    targets = paths["train_trg"].read_text().splitlines()
    assert len(sources) == len(targets) == small_model.TRAIN_PAIRS
    words = {w for line in sources for w in line.split()}
    assert len(words) == small_model.WORDS
    assert all(small_model.MIN_LEN <= len(s.split()) == len(t.split()) <= small_model.MAX_LEN
               for s, t in zip(sources, targets))
