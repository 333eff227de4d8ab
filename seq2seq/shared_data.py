"""Where the data shared between checkouts lives: `../shared` next to the repository root.

`SEQ2SEQ_SHARED_DIR` names another directory. Data stays there; benchmarks and tests read it in place.
"""

import os
from pathlib import Path

SHARED_DIR_VARIABLE = "SEQ2SEQ_SHARED_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """$SEQ2SEQ_SHARED_DIR if set, else the `shared` directory beside the repository root."""
    configured = os.environ.get(SHARED_DIR_VARIABLE)
    return Path(configured) if configured else REPO_ROOT.parent / "shared"


def shared_data_dir(name: str) -> Path:
    """A data set under the shared directory, e.g. shared_data_dir("multi30k") -> ../shared/data/multi30k."""
    return shared_dir() / "data" / name
