"""Prepare Multi30k en-de the way the Multi30k literature does, then convert it to RecordIO.

Pipeline per line (the order of the dataset's own ``task1-tokenize.sh``): lower-casing,
Moses punctuation normalisation, Moses tokenisation (``sacremoses``, no aggressive hyphen
splitting). Tokens are not XML-escaped: escaping maps tokens one to one, so tokenised BLEU is
the same either way, and unescaped text detokenises without an extra step.

Outputs (under ``build/multi30k/`` by default, git-ignored):
    ``{train,val}.lc.norm.tok.{en,de}``  tokenised, lower-cased text, one sentence per line
    ``rec/``                              ``train.rec``, ``val.rec``, ``vocab.src.json``,
                                          ``vocab.trg.json`` from ``python -m recordio_tools prepare``

Each step is skipped when its outputs exist and are newer than its inputs.

Usage: ``python -m bench.prepare_multi30k [--data-dir DIR] [--output DIR] [--force]``
"""
import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

from seq2seq.atomic_write import atomic_output
from seq2seq.shared_data import shared_data_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = shared_data_dir("multi30k")
DEFAULT_OUTPUT_DIR = REPO_ROOT / "build" / "multi30k"
SOURCE_LANG, TARGET_LANG = "en", "de"
SPLITS = ("train", "val")
TOKENISED_SUFFIX = "lc.norm.tok"
REC_FILES = ("train.rec", "val.rec", "vocab.src.json", "vocab.trg.json")


@dataclasses.dataclass(frozen=True)
class PreparedMulti30k:
    """Paths of the prepared corpus."""
    output_dir: Path
    train_source: Path
    train_target: Path
    val_source: Path
    val_target: Path
    raw_val_source: Path
    raw_val_target: Path
    rec_dir: Path


def tokenised_path(output_dir: Path, split: str, lang: str) -> Path:
    """Path of one tokenised, lower-cased file, e.g. ``train.lc.norm.tok.en``."""
    return Path(output_dir) / f"{split}.{TOKENISED_SUFFIX}.{lang}"


def layout(data_dir=DEFAULT_DATA_DIR, output_dir=DEFAULT_OUTPUT_DIR) -> PreparedMulti30k:
    """The paths ``prepare`` writes, without writing anything."""
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    return PreparedMulti30k(
        output_dir=output_dir,
        train_source=tokenised_path(output_dir, "train", SOURCE_LANG),
        train_target=tokenised_path(output_dir, "train", TARGET_LANG),
        val_source=tokenised_path(output_dir, "val", SOURCE_LANG),
        val_target=tokenised_path(output_dir, "val", TARGET_LANG),
        raw_val_source=data_dir / f"val.{SOURCE_LANG}",
        raw_val_target=data_dir / f"val.{TARGET_LANG}",
        rec_dir=output_dir / "rec",
    )


def is_fresh(outputs, inputs) -> bool:
    """True when every output exists and is newer than every input."""
    outputs, inputs = [Path(p) for p in outputs], [Path(p) for p in inputs]
    if not all(p.exists() for p in outputs):
        return False
    newest_input = max(p.stat().st_mtime for p in inputs)
    return min(p.stat().st_mtime for p in outputs) >= newest_input


class MosesPreprocessor:
    """Lower-case, normalise punctuation and Moses-tokenise one language's text."""

    def __init__(self, lang: str):
        from sacremoses import MosesPunctNormalizer, MosesTokenizer
        self.lang = lang
        self._normalizer = MosesPunctNormalizer(lang=lang)
        self._tokenizer = MosesTokenizer(lang=lang)

    def __call__(self, line: str) -> str:
        """One raw sentence -> space-separated lower-cased tokens (no trailing newline)."""
        normalised = self._normalizer.normalize(line.strip().lower())
        return self._tokenizer.tokenize(normalised, escape=False, return_str=True).strip()


def write_lines_atomically(path: Path, lines) -> int:
    """Write lines (without newlines) to ``path`` via a temp file + rename; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_output(path) as out:
        for line in lines:
            out.write((line + "\n").encode("utf-8"))
            count += 1
    return count


def preprocess_file(source: Path, target: Path, lang: str) -> int:
    """Tokenise ``source`` into ``target``; returns the number of lines written."""
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"Multi30k input file not found: {source}")
    process = MosesPreprocessor(lang)
    try:
        with open(source, encoding="utf-8") as inp:
            return write_lines_atomically(target, (process(line) for line in inp))
    except UnicodeDecodeError as err:
        raise ValueError(f"{source}: not valid UTF-8 at byte offset {err.start}") from None


def tokenise_corpus(data_dir: Path, paths: PreparedMulti30k, force: bool = False) -> None:
    """Write the four tokenised files that are missing or stale."""
    for split in SPLITS:
        for lang in (SOURCE_LANG, TARGET_LANG):
            raw = Path(data_dir) / f"{split}.{lang}"
            out = tokenised_path(paths.output_dir, split, lang)
            if not force and raw.exists() and is_fresh([out], [raw, Path(__file__)]):
                print(f"  up to date: {out}")
                continue
            start = time.time()
            count = preprocess_file(raw, out, lang)
            print(f"  tokenised {raw} -> {out} ({count} lines, {time.time() - start:.1f} s)")


def recordio_command(paths: PreparedMulti30k, python: str = sys.executable) -> list:
    """The ``recordio_tools prepare`` command line for the tokenised corpus."""
    return [python, "-m", "recordio_tools", "prepare",
            "--train-source", str(paths.train_source), "--train-target", str(paths.train_target),
            "--val-source", str(paths.val_source), "--val-target", str(paths.val_target),
            "--output", str(paths.rec_dir)]


def convert_to_recordio(paths: PreparedMulti30k, force: bool = False) -> None:
    """Run ``recordio_tools prepare`` unless ``rec/`` is newer than the tokenised text."""
    inputs = [paths.train_source, paths.train_target, paths.val_source, paths.val_target]
    outputs = [paths.rec_dir / name for name in REC_FILES]
    if not force and is_fresh(outputs, inputs):
        print(f"  up to date: {paths.rec_dir}")
        return
    if not (REPO_ROOT / "recordio_tools" / "__main__.py").exists():
        raise RuntimeError("recordio_tools is not available yet (recordio_tools/__main__.py missing)")
    proc = subprocess.run(recordio_command(paths), cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"recordio_tools prepare failed with exit status {proc.returncode}")


def prepare(data_dir=DEFAULT_DATA_DIR, output_dir=DEFAULT_OUTPUT_DIR, force=False,
            recordio=True) -> PreparedMulti30k:
    """Tokenise Multi30k and (with ``recordio``) convert it; returns the output paths."""
    paths = layout(data_dir, output_dir)
    print(f"Preparing Multi30k {SOURCE_LANG}->{TARGET_LANG} from {data_dir} into {paths.output_dir}")
    tokenise_corpus(Path(data_dir), paths, force=force)
    if recordio:
        convert_to_recordio(paths, force=force)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="raw Multi30k directory with {train,val}.{en,de}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT_DIR, help="output directory")
    parser.add_argument("--force", action="store_true", help="redo every step")
    parser.add_argument("--text-only", action="store_true", help="skip the RecordIO conversion")
    args = parser.parse_args(argv)
    try:
        prepare(args.data_dir, args.output, force=args.force, recordio=not args.text_only)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
