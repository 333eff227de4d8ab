"""The README's layout section lists every module of the package, and only modules that exist."""

import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("seq2seq", "recordio_tools")


def layout_rows() -> list:
    """The first cell of each row of the table under '## Code layout'."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as stream:
        text = stream.read()
    section = text.split("## Code layout\n", 1)[1].split("\n## ", 1)[0]
    return [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]


def listed_paths(cell: str) -> list:
    """`a/b.py`, `c.py` -> [a/b.py, a/c.py]; `pkg/` (`x.py`, `y_*.py`) -> [pkg/x.py, pkg/y_*.py]."""
    names = re.findall(r"`([^`]+)`", cell)
    first = names[0]
    directory = first if first.endswith("/") else os.path.dirname(first)
    paths = [] if first.endswith("/") else [first]
    return paths + [os.path.join(directory, name) for name in names[1:]]


def test_every_listed_module_exists_and_every_module_is_listed():
    listed = set()
    for cell in layout_rows():
        for pattern in listed_paths(cell):
            matches = glob.glob(os.path.join(REPO, pattern))
            assert matches, f"README layout lists {pattern}, which does not exist"
            listed.update(os.path.relpath(match, REPO) for match in matches)
    modules = {os.path.relpath(path, REPO) for package in PACKAGES
               for path in glob.glob(os.path.join(REPO, package, "**", "*.py"), recursive=True)
               if os.path.basename(path) not in ("__init__.py", "__main__.py")}
    assert len(modules) > 40
    assert sorted(modules - listed) == [], "modules missing from the README layout section"
