"""Training recipes: published setups as ready-to-use hyperparameter files.

Each recipe is a folder `recipes/<name>/` with
  * `hyperparameters.json`: SageMaker's format (every value a string), ready for
    `python -m seq2seq.sagemaker_client submit --hyperparameters recipes/<name>/hyperparameters.json` or for a
    local job's `/opt/ml/input/config/hyperparameters.json`;
  * `recipe.json`: where the setup comes from (`source`), what was changed to fit this model family (`adapted`),
    and how to prepare the data (`prepare`: the arguments of `python -m recordio_tools prepare` that choose the
    vocabulary, e.g. `["--subword", "unigram", "--subword-vocab-size", "8000"]`).

`load(name)` reads and validates one recipe (its hyperparameters pass the job's own gate); `names()` lists them.
"""

import dataclasses
import json
from pathlib import Path
from typing import List

from seq2seq.hyperparameters import Hyperparameters, parse_hyperparameters

RECIPES_DIR = Path(__file__).resolve().parent
HYPERPARAMETERS_FILE = "hyperparameters.json"
RECIPE_FILE = "recipe.json"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One recipe: its hyperparameters as SageMaker strings, and where it comes from."""

    name: str
    title: str
    source: str
    adapted: str
    prepare: List[str]
    hyperparameters: dict

    def parsed(self) -> Hyperparameters:
        """The hyperparameters through the training job's gate (raises HyperparameterError when invalid)."""
        return parse_hyperparameters(self.hyperparameters, source=str(RECIPES_DIR / self.name / HYPERPARAMETERS_FILE))


def names() -> List[str]:
    """Every recipe folder, sorted."""
    return sorted(path.parent.name for path in RECIPES_DIR.glob(f"*/{RECIPE_FILE}"))


def load(name: str) -> Recipe:
    """Read `recipes/<name>/`; raises ValueError naming the file when a part is missing or not valid."""
    folder = RECIPES_DIR / name
    if not (folder / RECIPE_FILE).exists():
        raise ValueError(f"no recipe {name!r} (known: {', '.join(names())})")
    about = json.loads((folder / RECIPE_FILE).read_text(encoding="utf-8"))
    hyperparameters = json.loads((folder / HYPERPARAMETERS_FILE).read_text(encoding="utf-8"))
    not_strings = [key for key, value in hyperparameters.items() if not isinstance(value, str)]
    if not_strings:
        raise ValueError(f"{folder / HYPERPARAMETERS_FILE}: values must be strings, as SageMaker passes them: "
                         f"{', '.join(not_strings)}")
    return Recipe(name=name, title=about["title"], source=about["source"], adapted=about["adapted"],
                  prepare=list(about.get("prepare", [])), hyperparameters=hyperparameters)
