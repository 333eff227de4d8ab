"""A screenshot of the model page (GET /) with real translations and their attention heatmaps, for the README.

    python -m demo.model_page_screenshot --base OPT_ML --output docs/model-page.png [--sentence TEXT ...]

Serves <OPT_ML>/model with `container/serve` on a free loopback port, types the sentences into the page in
headless Chromium (`make browser`), translates them and saves a PNG of the whole page.
"""

import argparse
import os
import sys
import tempfile

from demo.headless_browser import missing_browser, screenshot_page, start_chromium, translate_on_page
from demo.server_process import ServerProcess

DEFAULT_SENTENCES = ["A man in a blue shirt is riding a bike.", "Two dogs play in the snow."]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="an /opt/ml tree whose model/ holds a trained model")
    parser.add_argument("--output", default="docs/model-page.png", help="the PNG to write")
    parser.add_argument("--sentence", action="append", help="a sentence to translate (repeatable)")
    parser.add_argument("--beam-size", type=int, default=5)
    arguments = parser.parse_args(argv)
    missing = missing_browser()
    if missing:
        print(f"cannot take the screenshot: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch, \
            ServerProcess(arguments.base, os.path.join(scratch, "serve.log"), workers=1,
                          env={"SEQ2SEQ_NUM_GPUS": "0"}) as server:
        driver = start_chromium(os.path.join(scratch, "profile"))
        try:
            results = translate_on_page(driver, f"{server.url}/", arguments.sentence or DEFAULT_SENTENCES,
                                        beam_size=arguments.beam_size)
            os.makedirs(os.path.dirname(os.path.abspath(arguments.output)), exist_ok=True)
            screenshot_page(driver, arguments.output)
        finally:
            driver.quit()
    for result in results:
        print(f"{result.translation}  ({len(result.target_tokens)} x {len(result.source_tokens)} attention)")
    print(f"wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
