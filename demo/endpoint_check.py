"""Check a running endpoint end to end (container/image_test.sh runs it against the image's `serve`).

    python -m demo.endpoint_check --url http://127.0.0.1:PORT --model-dir DIR --sentences FILE

Checks GET /ping; JSON /invocations (with and without the attention matrix); RecordIO-protobuf
/invocations, whose ids must decode to the JSON answers; JSON lines; a 415 for an unsupported
content type. Prints one line per check with its duration; exits 1 at the first failure.
"""

import argparse
import sys
import time
from typing import List

import requests

from seq2seq import client
from seq2seq.data.vocab import Vocabulary


class CheckFailed(Exception):
    """A response that breaks the contract."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def check_ping(url: str) -> str:
    response = requests.get(url + "/ping", timeout=2)
    expect(response.status_code == 200, f"/ping answered {response.status_code}")
    return "200"


def check_json(url: str, sentences: List[str]) -> List[str]:
    targets = client.translate(sentences, url)
    expect(len(targets) == len(sentences), f"{len(sentences)} instances gave {len(targets)} predictions")
    expect(all(isinstance(t, str) for t in targets), "a prediction's target is not a string")
    return targets


def check_attention(url: str, sentence: str) -> str:
    prediction = client.translate_predictions([sentence], url, {"attention_matrix": "true"})[0]
    rows, columns = len(prediction["matrix"]), len(sentence.split())
    expect(rows == len(prediction["target"].split()),
           f"attention matrix has {rows} rows for {len(prediction['target'].split())} target tokens")
    expect(all(len(row) == columns for row in prediction["matrix"]),
           f"attention rows are not {columns} (source tokens) long")
    return f"{rows}x{columns} matrix"


def check_protobuf(url: str, model_dir: str, sentences: List[str], json_targets: List[str]) -> str:
    source_vocab = Vocabulary.load(f"{model_dir}/vocab.src.json")
    target_vocab = Vocabulary.load(f"{model_dir}/vocab.trg.json")
    target_ids = client.translate_ids([source_vocab.encode(s.split()) for s in sentences], url)
    expect(len(target_ids) == len(sentences), f"{len(sentences)} records gave {len(target_ids)} records")
    decoded = [" ".join(target_vocab.decode(ids.tolist())) for ids in target_ids]
    expect(all(0 <= i < len(target_vocab) for ids in target_ids for i in ids.tolist()),
           "a target id is outside the target vocabulary")
    expect(decoded == json_targets, f"protobuf and JSON answers differ: {decoded[:3]} vs {json_targets[:3]}")
    return f"{len(sentences)} records, same as JSON"


def check_jsonlines(url: str, sentences: List[str], json_targets: List[str]) -> str:
    targets = client.translate_jsonlines(sentences, url)
    expect(targets == json_targets, "JSON lines answers differ from the JSON answers")
    return f"{len(targets)} lines"


def check_unsupported_type(url: str) -> str:
    response = requests.post(url + "/invocations", data=b"hello", headers={"Content-Type": "text/csv"}, timeout=10)
    expect(response.status_code == 415, f"text/csv answered {response.status_code}, expected 415")
    return "415"


def run_checks(url: str, model_dir: str, sentences: List[str]) -> None:
    results = {}

    def step(name, function, *args):
        started = time.monotonic()
        results[name] = function(*args)
        detail = results[name] if isinstance(results[name], str) else f"{len(results[name])} translations"
        print(f"  ok  {name:<36} {detail}  ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)

    step("GET /ping", check_ping, url)
    step("POST /invocations application/json", check_json, url, sentences)
    step("  ... with attention_matrix", check_attention, url, sentences[0])
    step("POST /invocations recordio-protobuf", check_protobuf, url, model_dir, sentences,
         results["POST /invocations application/json"])
    step("POST /invocations application/jsonlines", check_jsonlines, url, sentences,
         results["POST /invocations application/json"])
    step("POST /invocations text/csv", check_unsupported_type, url)
    example = sentences[0], results["POST /invocations application/json"][0]
    print(f"  e.g. {example[0]!r} -> {example[1]!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--model-dir", required=True, help="the served model directory (for its vocabularies)")
    parser.add_argument("--sentences", required=True, help="source sentences, one per line")
    parser.add_argument("--limit", type=int, default=20, help="sentences to send (default 20)")
    args = parser.parse_args(argv)
    with open(args.sentences, encoding="utf-8") as stream:
        sentences = [line.strip() for line in stream if line.strip()][:args.limit]
    try:
        run_checks(args.url.rstrip("/"), args.model_dir, sentences)
    except (CheckFailed, client.ServerError, requests.RequestException, KeyError, ValueError) as error:
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
