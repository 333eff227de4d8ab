"""Headless Chromium (Debian's `chromium` and `chromium-driver` packages) driven by selenium, and the model page
(GET / of the endpoint) used as a person would: type sentences, set the decoding options, click Translate, read
what the page shows.

The one implementation behind the page's browser test (tests/integration/test_model_page_browser.py) and its
screenshot in the README (demo.model_page_screenshot). `make browser` installs the packages.
"""

import base64
import os
import shutil
from dataclasses import dataclass
from typing import List, Optional

from seq2seq.atomic_write import write_bytes

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless, no sandbox (root in a container), and nothing that reaches out to the network on its own.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")
RESULT_TIMEOUT_S = 60


def missing_browser() -> Optional[str]:
    """None when Chromium and its driver are installed, else what is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    return None if not missing else f"{' and '.join(missing)} not installed (`make browser` installs Debian's " \
                                    f"chromium and chromium-driver)"


def can_install_browser() -> bool:
    """True where `make browser` can install the packages (Debian's apt-get is there)."""
    return shutil.which("apt-get") is not None


def start_chromium(user_data_dir: str, width: int = 1200, height: int = 900):
    """A selenium WebDriver on a fresh headless Chromium profile in `user_data_dir` (an empty directory)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@dataclass
class RenderedResult:
    """What the page shows for one sentence: the translation text and the heatmap, `weights` one row per target
    token (the row labels) and one column per source token (the column labels)."""

    translation: str
    source_tokens: List[str]
    target_tokens: List[str]
    weights: List[List[float]]


def translate_on_page(driver, url: str, sentences: List[str], beam_size: Optional[int] = None,
                      length_penalty_alpha: Optional[float] = None) -> List[RenderedResult]:
    """Open the model page at `url`, type `sentences` (one per line) and the options given, click Translate, wait
    for the results and read them back from the page. RuntimeError with the page's message when it shows an
    error."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    driver.find_element(By.ID, "sentences").send_keys("\n".join(sentences))
    for name, value in (("beam_size", beam_size), ("length_penalty_alpha", length_penalty_alpha)):
        if value is not None:
            field = driver.find_element(By.ID, name)
            field.clear()
            field.send_keys(str(value))
    driver.find_element(By.ID, "translate").click()

    def finished(page):
        status = page.find_element(By.ID, "status")
        return "error" in (status.get_attribute("class") or "") or \
            len(page.find_elements(By.CSS_SELECTOR, "#results .result")) == len(sentences)
    WebDriverWait(driver, RESULT_TIMEOUT_S).until(finished)
    status = driver.find_element(By.ID, "status")
    if "error" in (status.get_attribute("class") or ""):
        raise RuntimeError(f"the model page shows an error: {status.text}")
    # The heatmaps in one script call (a WebDriver round trip per cell would take seconds); the translations as
    # the page renders them (the visible text).
    heatmaps = driver.execute_script("""
        const all = (node, selector) => Array.from(node.querySelectorAll(selector));
        return all(document, "#results .result").map((section) => ({
          source: all(section, "table.heatmap thead th.source-token").map((th) => th.textContent),
          target: all(section, "table.heatmap tbody th.target-token").map((th) => th.textContent),
          weights: all(section, "table.heatmap tbody tr").map(
            (tr) => all(tr, "td.cell").map((td) => Number(td.dataset.weight))),
        }));""")
    translations = [element.text
                    for element in driver.find_elements(By.CSS_SELECTOR, "#results .result .translation")]
    return [RenderedResult(text, heatmap["source"], heatmap["target"], heatmap["weights"])
            for text, heatmap in zip(translations, heatmaps)]


def screenshot_page(driver, path: str, width: int = 1100) -> None:
    """A PNG of the whole page, `width` CSS pixels wide and as tall as the page, written atomically to `path`."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": 600, "deviceScaleFactor": 1, "mobile": False})
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    write_bytes(path, base64.b64decode(shot["data"]))
