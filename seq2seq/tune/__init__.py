"""`python -m seq2seq.tune`: a local hyperparameter search with Optuna over the real training job.

    cli.py           the command line and its exit codes
    search.py        checks before the first trial, then the ask / run / tell loop
    sampling.py      search space ranges as Optuna distributions and back to hyperparameter strings
    trial_runner.py  one trial: its /opt/ml tree, the job, checkpoint metrics reported, pruning and the time cap
    study_store.py   the study in WORK/study.db: resume, interrupted trials, one search per work folder
    results.py       results.csv / .json, best/hyperparameters.json, trials.png and the printed table
"""
