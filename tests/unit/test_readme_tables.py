"""The README's generated tables (hyperparameters, metric regexes, recipes) match the code and recipes/."""

import re

import pytest

from demo import readme_tables
from seq2seq.hyperparameters import names
from seq2seq.training.metrics_log import METRIC_REGEXES


def test_readme_tables_are_current():
    with open(readme_tables.README, encoding="utf-8") as stream:
        text = stream.read()
    stale = [name for name, is_stale in readme_tables.stale_tables(text).items() if is_stale]
    assert not stale, f"run python -m demo.readme_tables --write (stale: {stale})"


def test_hyperparameter_table_has_every_name_once_and_marks_ours():
    rows = readme_tables.hyperparameter_table().splitlines()[2:]
    listed = [re.match(r"\| `([a-z_0-9]+)` \|", row).group(1) for row in rows]
    assert sorted(listed) == sorted(names())
    by_name = dict(zip(listed, rows))
    assert "— (ours)" in by_name["label_smoothing"]
    assert "| `64` | `64` |" in by_name["batch_size"]


def test_metric_table_escapes_nothing_away():
    table = readme_tables.metric_table()
    for name, regex in METRIC_REGEXES.items():
        assert f"| `{name}` | `{regex}` |" in table


def test_recipe_table_has_one_row_per_recipe_with_its_settings():
    import recipes
    rows = readme_tables.recipe_table().splitlines()[2:]
    assert len(rows) == len(recipes.names())
    for name, row in zip(recipes.names(), rows):
        assert f"[`{name}`](recipes/{name}/hyperparameters.json)" in row
        optimizer = recipes.load(name).hyperparameters["optimizer_type"]
        assert f"`optimizer_type={optimizer}`" in row


def test_render_replaces_only_between_markers_and_needs_them():
    text = ("intro\n<!-- BEGIN GENERATED: hyperparameters -->\nSTALE TEXT\n<!-- END GENERATED: hyperparameters -->\n"
            "middle\n<!-- BEGIN GENERATED: metrics -->\n<!-- END GENERATED: metrics -->\n"
            "<!-- BEGIN GENERATED: recipes -->\n<!-- END GENERATED: recipes -->\nend\n")
    rendered = readme_tables.render(text)
    assert rendered.startswith("intro\n") and "middle\n" in rendered and rendered.endswith("end\n")
    assert "STALE TEXT" not in rendered
    assert readme_tables.render(rendered) == rendered
    with pytest.raises(ValueError, match="metrics"):
        readme_tables.render(text.replace("<!-- BEGIN GENERATED: metrics -->\n", ""))
