"""Where a new job's parameters start: the model channel (fine-tuning), pretrained embeddings, frozen parts.

The training job calls `check_model_channel` at the start (the architecture gate, before any data is read) and
`prepare_parameters` after the model is initialised and before the trainer is built:

1. a job that resumes (its checkpoint directory holds a training state) reads neither channel: the trainer restores
   its own checkpoint, so a fine-tuning job stopped by SIGTERM continues from where it stopped;
2. otherwise the stored model of the `model` channel, if any, is loaded (seq2seq.model_channel), then the vectors
   of the `embeddings` channel, if any (seq2seq.embeddings);
3. in every case the parameters chosen by `fixed_param_strategy`, `freeze_embeddings_source` and
   `freeze_embeddings_target` get grad_req 'null': the optimiser never changes them. A matrix shared by weight
   tying is one parameter, fixed under all its names when any of them is chosen: with weight_tying_type src_trg,
   freeze_embeddings_source (or fixed_param_strategy encoder) fixes the target embeddings too, and with
   src_trg_softmax also the output layer's weights; with trg_softmax, freeze_embeddings_target fixes the output
   layer's weights. The log names every parameter kept fixed.

The optimiser state always starts fresh (the stored model has none), and the learning rate, warm-up and early
stopping of the new job's hyperparameters apply.
"""

import logging
import os
from typing import List, Optional

from . import constants
from .data.subword import find_subword_models
from .data.vocab import Vocabulary
from .embeddings import load_pretrained_embeddings
from .hyperparameters import Hyperparameters
from .model.seq2seq_model import Seq2SeqModel
from .model_channel import LoadReport, channel_has_model, check_architecture, load_into, open_stored_model
from .errors import UserError
from .opt_ml import SageMakerPaths, read_input_data_config
from .training import training_state as ts

logger = logging.getLogger(__name__)

# fixed_param_strategy: structural name prefixes of the parameters kept fixed.
FIXED_PREFIXES = {
    "none": (),
    "embeddings": ("encoder.embedding.", "decoder.embedding."),
    "encoder": ("encoder.",),
    "all_except_decoder": ("encoder.", "bridge."),
}


def has_training_state(checkpoint_dir: str) -> bool:
    """True when the checkpoint directory holds a training state to resume from."""
    return os.path.exists(os.path.join(ts.state_dir(checkpoint_dir), constants.STATE_FILE))


def check_model_channel(paths: SageMakerPaths, hp: Hyperparameters) -> None:
    """The gate: when this job will fine-tune, the stored model must be readable and of the same architecture.
    The model and embeddings channels must be in File mode (an archive and text files are read whole)."""
    configs = read_input_data_config(paths)
    for channel in (constants.MODEL_CHANNEL, constants.EMBEDDINGS_CHANNEL):
        if channel in configs and configs[channel].is_pipe:
            raise UserError(f"channel '{channel}' must use File mode (TrainingInputMode \"File\"), not Pipe: "
                            f"its files are read whole")
    channel_dir = paths.channel_dir(constants.MODEL_CHANNEL)
    if not channel_has_model(channel_dir) or has_training_state(paths.checkpoint_dir):
        return
    with open_stored_model(channel_dir) as stored:
        check_architecture(hp, stored)


def prepare_parameters(paths: SageMakerPaths, hp: Hyperparameters, model: Seq2SeqModel, source_vocab: Vocabulary,
                       target_vocab: Vocabulary, subword=None) -> Optional[LoadReport]:
    """Load the model channel and the embeddings into the initialised `model` (unless the job resumes), then
    freeze what the hyperparameters ask. Returns the model channel's LoadReport, or None."""
    report = None
    if has_training_state(paths.checkpoint_dir):
        if channel_has_model(paths.channel_dir(constants.MODEL_CHANNEL)):
            logger.info("resuming from the checkpoint in %s: the model channel is not loaded again",
                        paths.checkpoint_dir)
    else:
        model_channel = paths.channel_dir(constants.MODEL_CHANNEL)
        if channel_has_model(model_channel):
            with open_stored_model(model_channel) as stored:
                check_architecture(hp, stored)
                _warn_on_other_subwords(stored.directory, subword)
                report = load_into(model, stored, source_vocab, target_vocab)
            logger.info("fine-tuning: parameters loaded from the model channel; the optimiser state starts fresh")
        load_pretrained_embeddings(model, paths.channel_dir(constants.EMBEDDINGS_CHANNEL), source_vocab,
                                   target_vocab, subword)
    frozen = freeze_parameters(model, hp)
    if frozen:
        logger.info("kept fixed (grad_req null): %d parameters: %s", len(frozen), ", ".join(frozen))
    return report


def _warn_on_other_subwords(stored_dir: str, subword) -> None:
    """Data cut with other subword models than the stored model's shares few pieces with it: say how to fix it."""
    stored = find_subword_models(stored_dir)
    if stored is None or (subword is not None and subword.source == stored.source
                          and subword.target == stored.target):
        return
    logger.warning("the stored model has its own subword models and the vocab channel %s; the new data is cut "
                   "into other pieces, so fewer rows carry over. Prepare it with `python -m recordio_tools "
                   "prepare --subword-models-from <the stored model>` to keep them",
                   "has others" if subword is not None else "has none")


def frozen_names(model: Seq2SeqModel, hp: Hyperparameters) -> List[str]:
    """Structural names of the parameters the hyperparameters keep fixed."""
    prefixes = list(FIXED_PREFIXES[hp.fixed_param_strategy])
    if hp.freeze_embeddings_source:
        prefixes.append("encoder.embedding.")
    if hp.freeze_embeddings_target:
        prefixes.append("decoder.embedding.")
    params = model._collect_params_with_prefix()
    names = {name for name in params if name.startswith(tuple(prefixes))}
    # A parameter shared under several names (weight tying) is fixed under all of them.
    shared = {id(params[name]) for name in names}
    return sorted(name for name, parameter in params.items() if id(parameter) in shared)


def freeze_parameters(model: Seq2SeqModel, hp: Hyperparameters) -> List[str]:
    """Set grad_req 'null' on the parameters to keep fixed (before the gluon.Trainer is built); their names."""
    names = frozen_names(model, hp)
    params = model._collect_params_with_prefix()
    for name in names:
        params[name].grad_req = "null"
    return names
