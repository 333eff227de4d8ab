"""An earlier commit of this project, exported under build/ and run beside the current code: the benchmarks'
"as it shipped before" figures, measured in the same run.

`export_commit(commit)` lays out the commit's tree (git archive). `single_sentence_ms` and `translate_file`
time that tree's own `Translator` and `seq2seq.translate` in a subprocess, with the environment the current
benchmark runs in minus the settings the earlier code did not make (MXNet's engine): the same OpenMP threads.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPORT_DIR = REPO_ROOT / "build" / "previous-release"
LATER_SETTINGS = ("MXNET_ENGINE_TYPE",)    # set by seq2seq.runtime_env, which the earlier code did not have

_SINGLE_SENTENCE_SCRIPT = """
import json, sys, time
from seq2seq.inference.translator import DecodeOptions, Translator
model, source, beam = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(source, encoding="utf-8").read().splitlines()
translator = Translator.load(model)
options = DecodeOptions(beam_size=beam)
for line in lines:
    translator.translate_text([line], options)
seconds = []
for line in lines:
    start = time.perf_counter()
    translator.translate_text([line], options)
    seconds.append(time.perf_counter() - start)
print(json.dumps(seconds))
"""


def export_commit(commit: str) -> Path:
    """The tree of `commit` under build/previous-release/ (git archive; reused when present)."""
    target = EXPORT_DIR / commit
    if not (target / "seq2seq").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=REPO_ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def environment(tree: Path) -> dict:
    env = {name: value for name, value in os.environ.items() if name not in LATER_SETTINGS}
    env["PYTHONPATH"] = str(tree)
    env["SEQ2SEQ_SHARED_DIR"] = str(REPO_ROOT.parent / "shared")
    return env


def single_sentence_seconds(tree: Path, model: Path, sentences, beam_size: int) -> list:
    """Each sentence alone through the earlier `Translator` (after an unmeasured pass): seconds per sentence."""
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt") as source:
        source.write("".join(s + "\n" for s in sentences))
        source.flush()
        run = subprocess.run([sys.executable, "-c", _SINGLE_SENTENCE_SCRIPT, str(model.resolve()), source.name,
                              str(beam_size)], cwd=tree, env=environment(tree), capture_output=True, text=True,
                             check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def translate_file(tree: Path, model: Path, source: Path, beam_size: int) -> dict:
    """The earlier `seq2seq.translate` over `source`: its own stats (translation time, model loading excluded)."""
    with tempfile.TemporaryDirectory() as work:
        stats = Path(work) / "stats.json"
        output = Path(work) / "output.txt"
        subprocess.run([sys.executable, "-m", "seq2seq.translate", "--model", str(model.resolve()), "--input",
                        str(source), "--output", str(output), "--beam-size", str(beam_size), "--stats-json",
                        str(stats)], cwd=tree, env=environment(tree), capture_output=True, check=True)
        result = json.loads(stats.read_text())
        result["outputs"] = output.read_text(encoding="utf-8").splitlines()
    return result
