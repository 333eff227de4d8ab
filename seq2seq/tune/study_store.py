"""The Optuna study of a search, kept in `WORK/study.db` (SQLite) so that an interrupted search resumes.

One search runs in a work folder at a time (a lock file says so). A study remembers the objective and the search
space it was created with; resuming it with others is refused, since its trials would not compare. A trial that a
killed search left RUNNING, or that was stopped by Ctrl-C / SIGTERM, is marked failed with `interrupted` set and its
parameters are queued again, so the resumed search runs it first; interrupted trials do not count towards --trials.
"""

import contextlib
import dataclasses
import fcntl
import json
from pathlib import Path
from typing import Iterator, List

import optuna
from optuna.trial import FrozenTrial, TrialState

from seq2seq.errors import UserError
from seq2seq.search_space import ParameterRange

STUDY_FILE = "study.db"
LOCK_FILE = ".search.lock"
SEARCH_ATTR = "search"          # study attribute: the objective and the space the study was created with
INTERRUPTED_ATTR = "interrupted"
FAILURE_ATTR = "failure"
INTERRUPTED_REASON = "interrupted: the search stopped during this trial (it is run again on resume)"
OBJECTIVES = {"validation:bleu": "maximize", "validation:perplexity": "minimize"}
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def storage_url(work_dir: Path) -> str:
    """Optuna's RDB storage URL of the search's SQLite file."""
    return f"sqlite:///{(Path(work_dir) / STUDY_FILE).resolve()}"


@contextlib.contextmanager
def exclusive(work_dir: Path) -> Iterator[None]:
    """Hold the work folder's lock for the block; UserError when another search holds it."""
    handle = open(Path(work_dir) / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{work_dir}: another search is running in this work folder") from None
        yield
    finally:
        handle.close()


def search_signature(objective: str, ranges: List[ParameterRange]) -> dict:
    """What a study must keep between runs: the objective and the ranges (JSON-safe)."""
    return json.loads(json.dumps({"objective": objective, "space": [dataclasses.asdict(r) for r in ranges]}))


def open_study(work_dir: Path, study_name: str, objective: str, ranges: List[ParameterRange],
               sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Create the study in WORK/study.db, or load it to resume; refuse one made for another objective or space."""
    study = optuna.create_study(storage=storage_url(work_dir), study_name=study_name, direction=OBJECTIVES[objective],
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    signature = search_signature(objective, ranges)
    stored = study.user_attrs.get(SEARCH_ATTR)
    if stored is None:
        study.set_user_attr(SEARCH_ATTR, signature)
    elif stored != signature:
        what = "objective" if stored["objective"] != objective else "search space"
        raise UserError(f"{work_dir / STUDY_FILE}: study '{study_name}' was created with another {what} "
                        f"({stored['objective'] if what == 'objective' else 'see its trials'}); resume it with the "
                        "same --space and --objective, or start a new one with another --work-dir or --study-name")
    return study


def is_interrupted(trial: FrozenTrial) -> bool:
    return bool(trial.user_attrs.get(INTERRUPTED_ATTR))


def finished_count(study: optuna.Study) -> int:
    """Trials that count towards --trials: complete, pruned or failed, not interrupted."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=FINISHED_STATES) if not is_interrupted(t))


def mark_interrupted(study: optuna.Study, trial: FrozenTrial) -> None:
    """Fail a trial the search did not finish, and queue its parameters to be run again."""
    study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED_ATTR, True)
    study._storage.set_trial_user_attr(trial._trial_id, FAILURE_ATTR, INTERRUPTED_REASON)
    study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs={"rerun_of": trial.number}, skip_if_exists=False)


def recover_interrupted(study: optuna.Study) -> List[int]:
    """Mark the trials a killed search left RUNNING as interrupted (this search holds the lock, so none is
    running). Returns their numbers."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        mark_interrupted(study, trial)
    return [t.number for t in stale]
