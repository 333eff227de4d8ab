"""Lay out a local /opt/ml tree, as SageMaker does inside the training container.

    <base>/input/config/hyperparameters.json     every value a string, as SageMaker writes it
    <base>/input/data/train/train.rec
    <base>/input/data/validation/val.rec
    <base>/input/data/vocab/vocab.src.json, vocab.trg.json (and subword.src.model, subword.trg.model if prepared)
    <base>/model/  <base>/output/  <base>/checkpoints/   empty, written by `train`

`python -m demo.sagemaker_tree --prepared DIR --base BASE --hyperparameters '{"batch_size": 32}'`
does the same from the shell (container/image_test.sh uses it).
"""

import argparse
import json
import os
import shutil
from typing import Dict, Mapping

from seq2seq import constants
from seq2seq.atomic_write import write_json
from seq2seq.data.subword import SUBWORD_FILES

CHANNEL_FILES = {
    constants.TRAIN_CHANNEL: (constants.TRAIN_FILE,),
    constants.VALIDATION_CHANNEL: (constants.VALIDATION_FILE,),
    constants.VOCAB_CHANNEL: (constants.VOCAB_SOURCE_FILE, constants.VOCAB_TARGET_FILE),
}
OUTPUT_DIRS = ("model", "output", "checkpoints")


def hyperparameters_as_strings(hyperparameters: Mapping[str, object]) -> Dict[str, str]:
    """SageMaker's form: a flat map of strings (booleans as "true"/"false")."""
    def text(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return {name: text(value) for name, value in hyperparameters.items()}


def build_training_tree(base_dir: str, prepared_dir: str, hyperparameters: Mapping[str, object],
                        writable_by_all: bool = False) -> Dict[str, str]:
    """Copy the files `recordio_tools prepare` wrote in `prepared_dir` into the channels under
    `base_dir`, write hyperparameters.json, create the output directories; returns the channel dirs.

    `writable_by_all` opens model/, output/ and checkpoints/ to every user (mode 0777), for a
    container that runs as an unprivileged user while the tree belongs to the host's user.
    """
    channel_dirs = {}
    for channel, names in CHANNEL_FILES.items():
        directory = os.path.join(base_dir, "input", "data", channel)
        os.makedirs(directory, exist_ok=True)
        for name in names:
            source = os.path.join(prepared_dir, name)
            if not os.path.isfile(source):
                raise FileNotFoundError(f"{source} is missing: run `python -m recordio_tools prepare` first")
            shutil.copyfile(source, os.path.join(directory, name))
        if channel == constants.VOCAB_CHANNEL:      # raw-text setups: the subword models travel with the vocab
            for name in SUBWORD_FILES:
                if os.path.isfile(os.path.join(prepared_dir, name)):
                    shutil.copyfile(os.path.join(prepared_dir, name), os.path.join(directory, name))
        channel_dirs[channel] = directory
    config_dir = os.path.join(base_dir, "input", "config")
    os.makedirs(config_dir, exist_ok=True)
    write_json(os.path.join(config_dir, "hyperparameters.json"), hyperparameters_as_strings(hyperparameters))
    for name in OUTPUT_DIRS:
        directory = os.path.join(base_dir, name)
        os.makedirs(directory, exist_ok=True)
        if writable_by_all:
            os.chmod(directory, 0o777)
    return channel_dirs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Lay out a local /opt/ml tree from prepared RecordIO files.")
    parser.add_argument("--prepared", required=True, help="directory written by `recordio_tools prepare`")
    parser.add_argument("--base", required=True, help="the tree's root (stands for /opt/ml)")
    parser.add_argument("--hyperparameters", default="{}", help="JSON object of hyperparameters")
    parser.add_argument("--writable-by-all", action="store_true",
                        help="mode 0777 on model/, output/, checkpoints/ (for a non-root container user)")
    args = parser.parse_args(argv)
    try:
        hyperparameters = json.loads(args.hyperparameters)
    except json.JSONDecodeError as error:
        parser.error(f"--hyperparameters is not JSON: {error}")
    if not isinstance(hyperparameters, dict):
        parser.error("--hyperparameters must be a JSON object")
    try:
        build_training_tree(args.base, args.prepared, hyperparameters, args.writable_by_all)
    except FileNotFoundError as error:
        parser.error(str(error))
    print(f"local /opt/ml tree ready under {args.base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
