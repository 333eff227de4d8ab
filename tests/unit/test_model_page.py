"""GET / serves the model page (a static file of the package) unless SEQ2SEQ_MODEL_PAGE turns it off; the page
talks to /invocations only. tests/integration/test_model_page_browser.py drives it in a real browser."""
import re

import pytest

from seq2seq.errors import UserError
from seq2seq.serving.app import MODEL_PAGE_FILE, create_app
from seq2seq.serving.options import OPTION_KINDS
from seq2seq.serving.providers import DirectProvider
from seq2seq.serving.settings import ServingSettings
from serving_fakes import ReversingTranslator


def get_page(settings: ServingSettings):
    return create_app(DirectProvider(ReversingTranslator()), settings).test_client().get("/")


def test_the_page_is_served_at_the_root_by_default():
    response = get_page(ServingSettings.from_env({"SEQ2SEQ_NUM_GPUS": "0"}))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    with open(MODEL_PAGE_FILE, "rb") as stream:
        assert response.get_data() == stream.read()


@pytest.mark.parametrize("value", ["0", "false"])
def test_the_setting_turns_the_page_off(value):
    settings = ServingSettings.from_env({"SEQ2SEQ_NUM_GPUS": "0", "SEQ2SEQ_MODEL_PAGE": value})
    assert settings.model_page is False
    response = get_page(settings)
    assert response.status_code == 404 and "error" in response.get_json()


def test_a_bad_setting_names_the_variable():
    with pytest.raises(UserError, match="SEQ2SEQ_MODEL_PAGE='maybe'"):
        ServingSettings.from_env({"SEQ2SEQ_MODEL_PAGE": "maybe"})


def test_the_page_posts_to_invocations_with_options_the_server_accepts():
    with open(MODEL_PAGE_FILE, encoding="utf-8") as stream:
        page = stream.read()
    assert re.findall(r"fetch\(\"([^\"]+)\"", page) == ["invocations"]        # relative: works behind a prefix
    assert not re.search(r"(src|href)=\"(https?:)?//", page)                 # nothing loaded from elsewhere
    options = re.search(r"const OPTIONS = \[([^\]]*)\]", page).group(1)
    sent = set(re.findall(r"\"(\w+)\"", options)) | {"attention_matrix"}
    assert sent <= set(OPTION_KINDS) and {"beam_size", "length_penalty_alpha"} <= sent
    for name in sent - {"attention_matrix"}:
        assert f'id="{name}"' in page
