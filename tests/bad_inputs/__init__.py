"""Bad inputs and what each produces: the cases behind docs/bad_inputs.md.

Each case builds a small /opt/ml tree (or an HTTP request), breaks one thing and returns what a user sees:
the first line of /opt/ml/output/failure (training) or "<status> <body>" (serving). Paths under the
temporary tree are written `<base>`.

The cases live by area: data.py (data, vocabularies), config.py (hyperparameters, resource config),
checkpoints.py (checkpoints, disk), serving.py (HTTP) and finetune.py (model channel, embeddings, checkpoint
config); job.py builds the trees and runs the job. The
table lists them in the order they are registered, which is the order the area modules are imported below.

`python -m tests.bad_inputs --write` runs every case and rewrites the table in docs/bad_inputs.md;
tests/integration/test_bad_inputs.py runs every case again and checks the table row by row.
"""
import argparse
import os
import re
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _path in (REPO_ROOT, os.path.join(REPO_ROOT, "tests"), os.path.join(REPO_ROOT, "tests", "unit")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

DOC = os.path.join(REPO_ROOT, "docs", "bad_inputs.md")
BEGIN, END = "<!-- BEGIN GENERATED: bad inputs -->", "<!-- END GENERATED: bad inputs -->"
CASES = []  # (id, area, what is wrong, function(work_dir) -> observed text)


def case(case_id: str, area: str, what: str):
    def register(function):
        CASES.append((case_id, area, what, function))
        return function
    return register


# The areas, in the order of the table (each module registers its cases when imported).
from tests.bad_inputs import data, config, checkpoints, serving, finetune  # noqa: E402
from tests.bad_inputs.job import run_job, trained_tree  # noqa: E402

AREAS = (data, config, checkpoints, serving, finetune)
__all__ = ["AREAS", "CASES", "case", "documented", "main", "observe", "render_table", "run_job", "trained_tree"]


# ----- running the cases, and the table -----

def observe(case_function, work_dir: str) -> str:
    """Run one case in `work_dir`; its output with `work_dir` written `<base>`, on one line."""
    text = case_function(work_dir)
    text = text.replace(os.path.realpath(work_dir), "<base>").replace(work_dir, "<base>")
    # Gluon numbers the models of a process (seq2seqmodel0_, seq2seqmodel1_, ...): a job builds one, but a test
    # process may have built others before this case.
    text = re.sub(r"\bseq2seqmodel\d+_", "seq2seqmodel0_", text)
    return " ".join(text.split())


def escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_table(observed: dict) -> str:
    lines = ["| # | id | area | bad input | what it produces |", "|---|---|---|---|---|"]
    for number, (case_id, area, what, _) in enumerate(CASES, 1):
        lines.append(f"| {number} | `{case_id}` | {area} | {escape(what)} | `{observed[case_id]}` |")
    return "\n".join(lines)


def documented() -> dict:
    """{id: expected text} from the table in docs/bad_inputs.md."""
    with open(DOC, encoding="utf-8") as stream:
        text = stream.read()
    table = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows[cells[1].strip("`")] = cells[4][1:-1]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bad_inputs", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in docs/bad_inputs.md")
    parser.add_argument("--only", help="run only this case id")
    args = parser.parse_args(argv)
    import logging
    logging.disable(logging.CRITICAL)
    observed = {}
    for case_id, _, _, function in CASES:
        if args.only and case_id != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="bad-input-") as work_dir:
            observed[case_id] = observe(function, work_dir)
        print(f"{case_id}: {observed[case_id]}", flush=True)
    if args.write and not args.only:
        with open(DOC, encoding="utf-8") as stream:
            text = stream.read()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        with open(DOC, "w", encoding="utf-8") as stream:
            stream.write(text[:start] + "\n" + render_table(observed) + "\n" + text[end:])
    return 0
