"""The command line of `python -m seq2seq.tune`: arguments in, a SearchSettings, the search, an exit code.

Exit codes: 0 the search ran its trials (some may have failed or been pruned), 2 bad input (one line on stderr, before
the first trial), 130 interrupted (Ctrl-C or SIGTERM; the running job was stopped and a rerun resumes).
"""

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from seq2seq.errors import UserError
from seq2seq.local_job import CONTAINER_CLIS
from seq2seq.sagemaker_client.cli import parse_key_values, read_hyperparameters
from seq2seq.search_space import load_search_space, value_text
from seq2seq.tune.search import PRUNERS, SAMPLERS, SearchSettings, run_search
from seq2seq.tune.study_store import OBJECTIVES
from seq2seq.tune.trial_runner import TrialSettings

EXAMPLE = """example:
  python -m seq2seq.tune --space space.yaml --data build/multi30k/raw-unigram-8000 --trials 8 --trial-minutes 7 \\
      --hyperparameters recipes/multi30k-30min/hyperparameters.json --hp max_num_batches=900 \\
      --enqueue recipes/multi30k-30min/hyperparameters.json --work-dir build/tune/multi30k
A rerun of the same command resumes the study in --work-dir."""


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.tune", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLE,
        description="Local hyperparameter search with Optuna: every trial is the real training job in its own "
                    "/opt/ml tree under WORK/trials/NNNN.")
    parser.add_argument("--space", required=True, help="search space file (.json, .yaml or .yml)")
    parser.add_argument("--data", required=True, type=Path,
                        help="prepared data: the output folder of python -m recordio_tools prepare (or train/, "
                             "validation/ and vocab/ folders)")
    parser.add_argument("--trials", required=True, type=_positive(int),
                        help="trials in total, those of earlier runs of the study included")
    parser.add_argument("--trial-minutes", type=_positive(float),
                        help="wall-time cap of one trial (SIGTERM; its value is its best checkpoint so far)")
    parser.add_argument("--hyperparameters", help="base hyperparameters (a JSON file, e.g. a recipe's); the search "
                                                  "space overrides its values")
    parser.add_argument("--hp", action="extend", nargs="+", default=[], metavar="NAME=VALUE",
                        help="static hyperparameters over the base file (repeatable); none may be in the search space")
    parser.add_argument("--objective", choices=sorted(OBJECTIVES), default="validation:bleu",
                        help="checkpoint metric to optimise: BLEU maximised, perplexity minimised (default %(default)s)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="random", help="default %(default)s")
    parser.add_argument("--pruner", choices=PRUNERS, default="median",
                        help="median: stop a trial whose checkpoint is worse than the median of earlier trials at "
                             "the same update, after two complete trials (default); none")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler (default %(default)s)")
    parser.add_argument("--work-dir", type=Path, default=Path("build/tune"),
                        help="study.db, trials/, results and best/ (default %(default)s)")
    parser.add_argument("--study-name", default="seq2seq", help="study in WORK/study.db (default %(default)s)")
    parser.add_argument("--enqueue", action="extend", nargs="+", default=[], metavar="FILE_OR_JSON",
                        help="hyperparameter settings to run first (a JSON file such as a recipe's "
                             "hyperparameters.json, or inline JSON); only the searched names are taken")
    parser.add_argument("--image", help="run each trial in this image: docker run --rm -v TREE:/opt/ml IMAGE train")
    parser.add_argument("--container-cli", choices=CONTAINER_CLIS, default="docker", help="default %(default)s")
    parser.add_argument("--container-arg", action="append", default=[], metavar="ARG",
                        help="one more option of `run` before IMAGE, e.g. --container-arg=--gpus=all (repeatable)")
    parser.add_argument("--threads", type=_positive(int), help="OpenMP threads of a trial's job")
    parser.add_argument("--poll-seconds", type=_positive(float), default=2.0,
                        help="how often a trial's checkpoint metrics are read (default %(default)s)")
    return parser


def read_enqueued(item: str) -> Tuple[str, dict]:
    """(source, values) of one --enqueue item: inline JSON when it starts with '{', else a JSON file."""
    if item.lstrip().startswith("{"):
        source = "--enqueue"
        try:
            values = json.loads(item)
        except ValueError as error:
            raise UserError(f"--enqueue {item!r}: not valid JSON ({error})") from None
    else:
        source = item
        values = read_hyperparameters(item, [])
    if not isinstance(values, dict):
        raise UserError(f"{source}: --enqueue takes a JSON object of hyperparameters")
    return source, values


def settings_from(args: argparse.Namespace) -> SearchSettings:
    """The search the arguments describe; UserError for a bad space, file or pair."""
    ranges = load_search_space(args.space)
    base = {name: value_text(value) for name, value in read_hyperparameters(args.hyperparameters, []).items()}
    static = parse_key_values(args.hp, "--hp")
    trial = TrialSettings(data_dir=args.data.resolve(), objective=args.objective, trial_minutes=args.trial_minutes,
                          poll_seconds=args.poll_seconds, threads=args.threads, image=args.image,
                          container_cli=args.container_cli, container_args=tuple(args.container_arg))
    return SearchSettings(ranges=ranges, space_source=args.space, work_dir=args.work_dir.resolve(),
                          trials=args.trials, trial=trial, base=base, static=static, sampler=args.sampler,
                          pruner=args.pruner, seed=args.seed, study_name=args.study_name,
                          enqueue=[read_enqueued(item) for item in args.enqueue])


def _interrupt(signum, frame):
    """SIGTERM ends the search like Ctrl-C: the running job is stopped, the trial marked interrupted."""
    raise KeyboardInterrupt


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_search(settings_from(args))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the running trial was stopped; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
