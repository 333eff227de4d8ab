"""bench.decode_targets: each target of the decoding and serving results, met or not, with its reference."""

import json

from bench import decode_targets


def decode_result(single_ms=30.0, speedup=3.2, bleu_delta=-0.1, coverage=0.996, batch_coverage=0.998,
                  onmt_ratio=2.0):
    return {"summary": {"single_sentence_median_ms": single_ms, "validation_speedup_vs_previous": speedup + 0.1,
                        "validation_speedup_vs_previous_release": speedup, "bleu_shortlist_minus_full": bleu_delta,
                        "shortlist_coverage_of_full_output": coverage,
                        "batch_shortlist_coverage_of_full_output": batch_coverage,
                        "output_tokens_per_s_vs_onmt": onmt_ratio},
            "results": {"previous_release": {"single_sentence": {"median_ms": 60.0},
                                             "validation_set": {"sentences_per_s": 50.0}},
                        "full": {"bleu": 37.4},
                        "onmt_translate": {"validation_set": {"output_tokens_per_s": 700.0}}}}


def serve_result(rate=70.0, p99=140.0, errors=0, rss=380.0, release_rate=27.0, release_rss=400.0):
    def layout(requests_per_s, p99_ms, worker_rss):
        return {"levels": {"8": {"requests_per_s": requests_per_s, "p99_ms": p99_ms, "errors": errors}},
                "worker_rss_mib": [worker_rss]}
    return {"layouts": {"shipped defaults": layout(rate, p99, rss),
                        "previous release (abc1234), its defaults": layout(release_rate, 400.0, release_rss)}}


def met(targets):
    return {row["target"]: row["met"] for row in targets}


def test_every_target_met():
    targets = decode_targets.decoding_targets(decode_result()) + decode_targets.serving_targets(serve_result())
    assert len(targets) == 11 and all(met(targets).values())
    by_name = {row["target"]: row for row in targets}
    assert by_name["batches of 32, sentences/s against the previous release"]["reference"] == 50.0
    assert by_name["8 clients, requests/s against the previous release"]["measured"] == round(70.0 / 27.0, 2)


def test_each_miss_is_reported_against_its_own_target():
    decoding = met(decode_targets.decoding_targets(decode_result(single_ms=41.0, speedup=2.9, bleu_delta=-0.21,
                                                                 coverage=0.994, onmt_ratio=0.9)))
    assert decoding == {"one sentence, median ms": False,
                        "batches of 32, sentences/s against the previous release": False,
                        "BLEU, shortlist minus whole vocabulary": False, "coverage, one sentence at a time": False,
                        "coverage, batches of 32": True, "output tokens/s against onmt_translate": False}
    serving = met(decode_targets.serving_targets(serve_result(rate=59.0, p99=151.0, errors=1, rss=401.0,
                                                              release_rate=20.0)))
    assert serving == {"8 clients, requests/s against the issue's figure": False,
                       "8 clients, requests/s against the previous release": True,
                       "8 clients, p99 ms": False, "8 clients, errors": False, "worker peak RSS MiB": False}


def test_the_command_writes_the_table(tmp_path, capsys):
    decode, serve, output = tmp_path / "decode.json", tmp_path / "serve.json", tmp_path / "targets.json"
    decode.write_text(json.dumps(decode_result(speedup=2.0)))
    serve.write_text(json.dumps(serve_result()))
    assert decode_targets.main(["--decode", str(decode), "--serve", str(serve), "--output", str(output)]) == 0
    written = json.loads(output.read_text())
    assert [row["met"] for row in written["targets"]].count(False) == 1
    assert "NO" in capsys.readouterr().out
