"""The search loop: ask Optuna for a sample, run it as a training job, tell Optuna the outcome, write the results.

Everything that can be checked is checked before the first trial (`check_search`): the space, the static
hyperparameters, the rules between hyperparameters (through the gate), the data folder, the queued settings.
A trial whose combination the gate still refuses, or whose job fails, is recorded as failed and the search goes on.
"""

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import optuna
from optuna.trial import TrialState

from seq2seq.errors import HyperparameterError, UserError
from seq2seq.hyperparameters import parse_hyperparameters
from seq2seq.local_job import check_prepared_data
from seq2seq.search_space import ParameterRange, check_combinations, check_objective_reported, check_static
from seq2seq.tune import results, study_store
from seq2seq.tune.sampling import distributions, enqueued_params, hyperparameter_values
from seq2seq.tune.trial_runner import COMPLETE, FAILED, PRUNED, TrialOutcome, TrialSettings, run_trial

TRIALS_DIR = "trials"
SAMPLERS = ("random", "tpe")
PRUNERS = ("median", "none")


@dataclass
class SearchSettings:
    """A search: `trials` trials in total (resumed ones included) of `ranges` over `base` (the base file, which the
    space overrides) and `static` (--hp pairs, which it may not), written to `work_dir`.

    enqueue: (source, hyperparameter values) of settings to run first; seed: of the sampler.
    """

    ranges: List[ParameterRange]
    space_source: str
    work_dir: Path
    trials: int
    trial: TrialSettings
    base: Dict[str, str] = field(default_factory=dict)
    static: Dict[str, str] = field(default_factory=dict)
    sampler: str = "random"
    pruner: str = "median"
    seed: int = 0
    study_name: str = "seq2seq"
    enqueue: List[Tuple[str, dict]] = field(default_factory=list)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """RandomSampler (the default) or TPESampler, seeded."""
    return optuna.samplers.TPESampler(seed=seed) if name == "tpe" else optuna.samplers.RandomSampler(seed=seed)


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """MedianPruner after two complete trials, from the first checkpoint on; or none."""
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


def check_search(settings: SearchSettings) -> List[dict]:
    """Every check that can run before the first trial; raises UserError. Returns the queued parameters."""
    check_static(settings.ranges, settings.static, "--hp")
    fixed = {**settings.base, **settings.static}
    check_combinations(settings.ranges, fixed, settings.space_source)
    check_objective_reported(settings.trial.objective, settings.ranges, fixed, "hyperparameters")
    check_prepared_data(settings.trial.data_dir)
    if settings.trial.image and shutil.which(settings.trial.container_cli) is None:
        raise UserError(f"--image needs {settings.trial.container_cli}, which is not on the PATH")
    return [enqueued_params(settings.ranges, values, source) for source, values in settings.enqueue]


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome) -> None:
    for name in results.OUTCOME_ATTRS:
        trial.set_user_attr(name, getattr(outcome, name))
    if outcome.failure:
        trial.set_user_attr(study_store.FAILURE_ATTR, outcome.failure)
    if outcome.state == COMPLETE:
        study.tell(trial, outcome.value)
    elif outcome.state == PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


def _describe(number: int, outcome: TrialOutcome, objective: str) -> str:
    value = "" if outcome.value is None else f" {objective} {outcome.value:.4g}"
    extra = {COMPLETE: " (capped at --trial-minutes)" if outcome.capped else "",
             PRUNED: f" at {outcome.pruned_step} updates"}.get(outcome.state, f": {outcome.failure}")
    return (f"trial {number} {outcome.state}{value}{extra}; {outcome.checkpoints} checkpoints, {outcome.updates} "
            f"updates, {outcome.wall_seconds:.0f} s")


def run_search(settings: SearchSettings, pruner: Optional[optuna.pruners.BasePruner] = None,
               log: Callable[[str], None] = print) -> optuna.Study:
    """Run (or resume) the search until `settings.trials` trials have finished; returns the study.

    `pruner` replaces the one named in the settings (tests pass a threshold pruner)."""
    queued = check_search(settings)
    work_dir = Path(settings.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial_settings, objective = settings.trial, settings.trial.objective
    with study_store.exclusive(work_dir):
        study = study_store.open_study(work_dir, settings.study_name, objective, settings.ranges,
                                       make_sampler(settings.sampler, settings.seed),
                                       pruner or make_pruner(settings.pruner))
        # a resumed search draws new samples: a sampler seeded as the first run would repeat its draws
        study.sampler = make_sampler(settings.sampler, settings.seed + len(study.trials))
        for number in study_store.recover_interrupted(study):
            log(f"trial {number} was interrupted by the last run; it runs again")
        for params in queued:
            study.enqueue_trial(params, skip_if_exists=True)
        done = study_store.finished_count(study)
        if done:
            log(f"resuming study '{settings.study_name}' in {work_dir}: {done} of {settings.trials} trials done")
        space = distributions(settings.ranges)
        while study_store.finished_count(study) < settings.trials:
            trial = study.ask(space)
            sampled = hyperparameter_values(settings.ranges, trial.params)
            job_hyperparameters = {**settings.base, **settings.static, **sampled}
            trial.set_user_attr(results.HYPERPARAMETERS_ATTR, sampled)
            trial.set_user_attr(results.JOB_HYPERPARAMETERS_ATTR, job_hyperparameters)
            log(f"trial {trial.number}: " + ", ".join(f"{k}={v}" for k, v in sampled.items()))
            try:
                parse_hyperparameters(job_hyperparameters, source=f"trial {trial.number}")
                outcome = run_trial(trial, job_hyperparameters, work_dir / TRIALS_DIR / f"{trial.number:04d}",
                                    trial_settings)
            except HyperparameterError as error:
                outcome = TrialOutcome(FAILED, None, 0, 0, 0.0, failure=error.message)
            except BaseException:
                study_store.mark_interrupted(study, study._storage.get_trial(trial._trial_id))
                results.write_results(work_dir, study, settings.ranges, objective, trial_settings.maximize)
                raise
            _tell(study, trial, outcome)
            log(_describe(trial.number, outcome, objective))
            results.write_results(work_dir, study, settings.ranges, objective, trial_settings.maximize)
        rows = results.write_results(work_dir, study, settings.ranges, objective, trial_settings.maximize)
        best = results.best_trial(study)
        log(results.table(rows, [r.name for r in settings.ranges], best.number if best else None))
        if best is not None:
            log(f"best: trial {best.number}, {objective} {best.value:.4g}; its hyperparameters: "
                f"{work_dir / results.BEST_HYPERPARAMETERS}")
        else:
            log("no trial completed: no best hyperparameters")
    return study
