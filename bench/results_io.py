"""Where benchmark results go and how paths appear in them: relative to the repository, written atomically."""

import json
from pathlib import Path

from seq2seq.atomic_write import write_text

REPO_ROOT = Path(__file__).resolve().parent.parent


def relative(path) -> str:
    """`path` relative to the repository, or just its name when it lies outside (never this machine's paths)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return path.name


def write_json_atomically(path: Path, obj) -> None:
    """Indented JSON (UTF-8) into a temporary file beside `path`, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_results(path: Path, results: dict, print_table) -> int:
    """The end of a benchmark's main(): `results` written to `path`, shown by print_table(results), and where
    they went; returns 0, the exit status."""
    write_json_atomically(path, results)
    print_table(results)
    print(f"results: {relative(path)}")
    return 0
