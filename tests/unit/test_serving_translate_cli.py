"""`python -m seq2seq.translate`: same Translator as the endpoint, sacreBLEU with its signature."""
import dataclasses
import io
import json

import pytest

from seq2seq import translate
from seq2seq.data.vocab import build_vocabulary
from tests.untrained_model import save_untrained_model
from seq2seq.inference.translator import Translator

SOURCES = ["ein hund läuft", "zwei kinder spielen im park", "", "ein mann mit hut"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    source_vocab = build_vocabulary(s.split() for s in SOURCES)
    target_vocab = build_vocabulary("a dog runs two children play in the park".split() for _ in range(2))
    save_untrained_model(str(directory), source_vocab, target_vocab, seed=1, max_seq_len_target=10)
    return directory


def run_cli(argv, stdin_text=""):
    stdout, stderr = io.StringIO(), io.StringIO()
    code = translate.run(translate.parse_args(argv), io.StringIO(stdin_text), stdout, stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def test_translations_match_the_translator_and_bleu_has_a_signature(model_dir, tmp_path):
    reference = tmp_path / "ref.txt"
    reference.write_text("a dog runs\ntwo children play in the park\n\na man\n", encoding="utf-8")
    stats = tmp_path / "stats.json"
    code, out, err = run_cli(["--model", str(model_dir), "--beam-size", "3", "--reference", str(reference),
                              "--stats-json", str(stats), "--chunk-size", "2"], "\n".join(SOURCES) + "\n")
    assert code == 0
    translator = Translator.load(str(model_dir))
    options = dataclasses.replace(translator.default_options, beam_size=3)
    expected = [" ".join(t.target_tokens) for t in translator.translate_text(SOURCES, options)]
    assert out.split("\n")[:-1] == expected
    assert "BLEU = " in err and "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in err
    written = json.loads(stats.read_text())
    assert written["sentences"] == len(SOURCES) and written["beam_size"] == 3
    assert 0.0 <= written["bleu"] <= 100.0 and written["sentences_per_second"] > 0


def test_reference_with_a_different_line_count_is_a_clear_error(model_dir, tmp_path, capsys):
    reference = tmp_path / "ref.txt"
    reference.write_text("only one line\n", encoding="utf-8")
    source = tmp_path / "src.txt"
    source.write_text("ein hund\nein mann\n", encoding="utf-8")
    output = tmp_path / "hyp.txt"
    assert translate.main(["--model", str(model_dir), "--input", str(source), "--output", str(output),
                           "--reference", str(reference)]) == 1
    assert len(output.read_text(encoding="utf-8").splitlines()) == 2
    assert f"--reference {reference}: 1 lines, but the input has 2 lines" in capsys.readouterr().err


def test_missing_model_and_bad_options_exit_1_with_a_message(tmp_path, capsys):
    assert translate.main(["--model", str(tmp_path / "nope"), "--input", "/dev/null"]) == 1
    assert f"--model {tmp_path / 'nope'}: no such directory" in capsys.readouterr().err


def test_beam_size_below_one_is_rejected(model_dir, capsys):
    assert translate.main(["--model", str(model_dir), "--beam-size", "0", "--input", "/dev/null"]) == 1
    assert "--beam-size must be at least 1" in capsys.readouterr().err


def test_search_flags_reach_the_options_and_negative_values_are_rejected(model_dir, capsys):
    translator = Translator.load(str(model_dir))
    args = translate.parse_args(["--model", str(model_dir), "--no-shortlist", "--block-ngram-repeat", "2",
                                 "--coverage-penalty", "0.3"])
    options = translate.decode_options(translator, args)
    assert (options.shortlist, options.block_ngram_repeat, options.coverage_penalty) == (False, 2, 0.3)
    assert translate.decode_options(translator, translate.parse_args(["--model", str(model_dir)])).shortlist
    assert translate.main(["--model", str(model_dir), "--block-ngram-repeat", "-1", "--input", "/dev/null"]) == 1
    assert "--block-ngram-repeat must be at least 0" in capsys.readouterr().err
