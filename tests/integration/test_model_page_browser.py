"""The model page (GET /) in a real headless Chromium against `container/serve` (gunicorn) on a tiny model: what it
renders is what /invocations returns, the heatmap has a cell per (target, source) token, the decoding settings
typed on the page reach the server.

Needs Debian's chromium and chromium-driver (`make browser`, run by `make test`). Where they are missing the test
fails, unless the machine has no apt-get to install them: then it is skipped, saying so.
"""
import time

import numpy as np
import pytest
import requests

from demo.headless_browser import can_install_browser, missing_browser, start_chromium, translate_on_page
from demo.server_process import ServerProcess
from seq2seq.data.vocab import build_vocabulary
from tests.untrained_model import save_untrained_model

SENTENCES = ["ein hund läuft im park", "zwei kinder spielen", "eine frau mit einem roten hut sitzt auf einer bank"]
MAX_SOURCE = 8
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser_installed():
    reason = missing_browser()
    if reason is not None:
        if not can_install_browser():
            pytest.skip(f"{reason}; this machine has no apt-get to install them")
        pytest.fail(f"{reason}: the model page cannot be tested without a browser")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("opt_ml")
    source_vocab = build_vocabulary(s.split() for s in SENTENCES)
    target_vocab = build_vocabulary("a dog runs in the park two children play a woman with red hat".split()
                                    for _ in range(2))
    save_untrained_model(str(base / "model"), source_vocab, target_vocab, seed=0, max_seq_len_source=MAX_SOURCE,
                         max_seq_len_target=12)
    process = ServerProcess(str(base), str(base / "serve.log"), workers=1, env={"SEQ2SEQ_NUM_GPUS": "0"},
                            ready_timeout_s=90, stop_timeout_s=30, cwd=str(base))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def driver(browser_installed, tmp_path_factory):
    chromium = start_chromium(str(tmp_path_factory.mktemp("chromium-profile")))
    yield chromium
    chromium.quit()


def invocations(server, configuration):
    response = requests.post(f"{server.url}/invocations", timeout=30, json={
        "instances": [{"data": s} for s in SENTENCES], "configuration": dict(configuration, attention_matrix=True)})
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_the_page_renders_the_translations_and_heatmaps_of_invocations(server, driver):
    started = time.monotonic()
    rendered = translate_on_page(driver, f"{server.url}/", SENTENCES, beam_size=3, length_penalty_alpha=0.5)
    print(f"model page: typed, translated and rendered {len(SENTENCES)} sentences in "
          f"{time.monotonic() - started:.2f} s")
    expected = invocations(server, {"beam_size": 3, "length_penalty_alpha": 0.5})
    assert len(rendered) == len(expected) == len(SENTENCES)
    for sentence, shown, prediction in zip(SENTENCES, rendered, expected):
        target_tokens = prediction["target"].split()
        assert target_tokens, "the tiny model gave an empty translation: nothing to draw"
        assert shown.translation == prediction["target"]
        assert shown.source_tokens == sentence.split()[:MAX_SOURCE]       # the third is cut at MAX_SOURCE
        assert shown.target_tokens == target_tokens
        assert np.array(shown.weights).shape == (len(target_tokens), len(shown.source_tokens))
        np.testing.assert_allclose(shown.weights, prediction["matrix"], rtol=0, atol=1e-12)


def test_the_settings_typed_on_the_page_reach_the_server(server, driver):
    with pytest.raises(RuntimeError, match=r"configuration\.beam_size"):
        translate_on_page(driver, f"{server.url}/", SENTENCES[:1], beam_size=0)
    with pytest.raises(RuntimeError, match=r"configuration\.length_penalty_alpha"):
        translate_on_page(driver, f"{server.url}/", SENTENCES[:1], length_penalty_alpha=11)
    greedy = translate_on_page(driver, f"{server.url}/", SENTENCES, beam_size=1)
    assert [r.translation for r in greedy] == [p["target"] for p in invocations(server, {"beam_size": 1})]
