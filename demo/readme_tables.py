"""The README's generated tables: hyperparameters, metric regexes and recipes, rendered from the code and recipes/.

    python -m demo.readme_tables            # exit 1 and name the stale tables if README.md is out of date
    python -m demo.readme_tables --write    # rewrite them in place

Each table sits between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`.
"""

import argparse
import os
import re
import sys
from typing import Dict

import recipes
from seq2seq.atomic_write import write_text
from seq2seq.hyperparameters import OURS, documentation_rows
from seq2seq.training.metrics_log import METRIC_REGEXES

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def hyperparameter_table() -> str:
    """One row per hyperparameter: name, our default, Amazon's default (or "ours"), allowed values, meaning."""
    lines = ["| name | default here | Amazon's built-in | allowed | meaning |", "|---|---|---|---|---|"]
    for name, default, allowed, doc, origin in documentation_rows():
        amazon = "— (ours)" if origin == OURS else f"`{origin}`"
        lines.append(f"| `{name}` | `{_cell(default)}` | {_cell(amazon)} | {_cell(allowed)} | {_cell(doc)} |")
    return "\n".join(lines)


def metric_table() -> str:
    """SageMaker MetricDefinitions: metric name and regex (one capture group)."""
    lines = ["| metric | regex |", "|---|---|"]
    for name, regex in METRIC_REGEXES.items():
        lines.append(f"| `{name}` | `{_cell(regex)}` |")
    return "\n".join(lines)


# Settings every recipe shares (the reference model's sizes, the device, decoding): left out of the recipe table.
_COMMON_RECIPE_SETTINGS = ("num_embed_source", "num_layers_encoder", "num_layers_decoder", "rnn_num_hidden",
                           "rnn_attention_type", "devices", "beam_size", "bleu_sample_size", "seed",
                           "log_frequency_num_batches")


def recipe_table() -> str:
    """One row per recipe of recipes/: its name, source, what was adapted, vocabulary and settings."""
    lines = ["| recipe | source | adapted to this model | data | settings |", "|---|---|---|---|---|"]
    for name in recipes.names():
        recipe = recipes.load(name)
        settings = ", ".join(f"`{key}={value}`" for key, value in sorted(recipe.hyperparameters.items())
                             if key not in _COMMON_RECIPE_SETTINGS)
        prepare = f"`prepare {' '.join(recipe.prepare)}`" if recipe.prepare else "any"
        lines.append(f"| [`{name}`](recipes/{name}/hyperparameters.json): {_cell(recipe.title)} | "
                     f"{_cell(recipe.source)} | {_cell(recipe.adapted)} | {prepare} | {settings} |")
    return "\n".join(lines)


TABLES = {"hyperparameters": hyperparameter_table, "metrics": metric_table, "recipes": recipe_table}


def _pattern(name: str) -> "re.Pattern":
    return re.compile(rf"(<!-- BEGIN GENERATED: {name} -->\n)(.*?)(<!-- END GENERATED: {name} -->)", re.S)


def render(text: str) -> str:
    """`text` with every generated table replaced by its current rendering."""
    for name, make in TABLES.items():
        pattern = _pattern(name)
        if not pattern.search(text):
            raise ValueError(f"README has no markers for the {name!r} table")
        text = pattern.sub(lambda match, body=make(): match.group(1) + body + "\n" + match.group(3), text)
    return text


def stale_tables(text: str) -> Dict[str, bool]:
    """Table name -> True when its text in `text` differs from the current rendering."""
    rendered = render(text)
    return {name: _pattern(name).search(text).group(2) != _pattern(name).search(rendered).group(2)
            for name in TABLES}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the tables in README.md")
    parser.add_argument("--readme", default=README)
    args = parser.parse_args(argv)
    with open(args.readme, encoding="utf-8") as stream:
        text = stream.read()
    if args.write:
        write_text(args.readme, render(text))
        return 0
    stale = [name for name, is_stale in stale_tables(text).items() if is_stale]
    if stale:
        print(f"{args.readme}: stale table(s) {', '.join(stale)}; run python -m demo.readme_tables --write",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
