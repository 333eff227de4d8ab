"""The training job (`train` in the image): /opt/ml in, /opt/ml/model out, one failure funnel.

Exit codes: 0 success (or clean stop on SIGTERM, resumable), 2 user error, 1 internal error. The first lines of
/opt/ml/output/failure say what went wrong and where; the traceback goes to the log.
"""

import errno
import logging
import os
import signal
import sys
import traceback
from typing import Callable, List, Optional

import mxnet as mx
import numpy as np

from . import constants, failure_text
from .atomic_write import write_text
from .data.batch_iterator import BucketBatchIterator
from .data.bucketing import define_parallel_buckets, mean_length_ratio
from .data.dataset import ParallelData, read_parallel_data
from .data.recordio_codec import read_pairs, read_pairs_from_stream
from .data.subword import SubwordModels, load_checked_subword_models
from .data.vocab import Vocabulary
from .errors import DistributedError, StorageError, UserError, check_condition
from .finetune import check_model_channel, prepare_parameters
from .hyperparameters import Hyperparameters, load_hyperparameters_file
from .inference.shortlist import Shortlist
from .lexicon import shortlist_from_pairs
from .model.config import ModelConfig
from .model.seq2seq_model import Seq2SeqModel
from .model.tying import check_joint_vocabulary
from .model_dir import write_model_dir, write_model_metrics
from .opt_ml import (SageMakerPaths, channel_record_sources, read_input_data_config, read_resource_config,
                     vocab_files)
from .training import training_state as ts
from .training.checkpoint_averaging import load_average
from .training.curriculum import check_short_phase, short_bucket_indices
from .training.devices import contexts_for, local_kvstore_type
from .training.initialization import initializer_for
from .training.precision import enable_mixed_precision
from .training.tensorboard_log import TensorBoardLog, ValidationSamples, event_directory
from .training.trainer import Seq2SeqTrainer, TrainingSetup

logger = logging.getLogger("seq2seq.train")
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO}


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="[%(asctime)s %(levelname)s %(name)s] %(message)s", datefmt="%m/%d/%Y %H:%M:%S")


def write_failure(paths: SageMakerPaths, reason: str) -> None:
    """Write the failure reason unless one is already there (the first failure is the real one).

    When /opt/ml/output cannot be written either, the reason goes to stderr (SageMaker's log) instead."""
    try:
        os.makedirs(paths.output_dir, exist_ok=True)
        if not os.path.exists(paths.failure_file):
            write_text(paths.failure_file, reason.rstrip() + "\n")
    except OSError as error:
        print(f"cannot write {paths.failure_file} ({error.strerror or error}); the failure was: {reason}",
              file=sys.stderr, flush=True)


def check_writable(paths: SageMakerPaths, is_master: bool) -> None:
    """Fail at the start, naming the directory, when one the job must write is not writable (instead of after
    hours of training): /opt/ml/output and /opt/ml/checkpoints on every host, /opt/ml/model on the master."""
    purposes = [(paths.output_dir, "the success/failure files and metrics"),
                (paths.checkpoint_dir, "the checkpoints that make the job resumable")]
    if is_master:
        purposes.append((paths.model_dir, "the trained model"))
    for directory, purpose in purposes:
        probe = os.path.join(directory, f".write-test-{os.getpid()}")
        try:
            os.makedirs(directory, exist_ok=True)
            with open(probe, "wb") as stream:
                stream.write(b"0")
            os.remove(probe)
        except OSError as error:
            code = f" ({errno.errorcode[error.errno]})" if error.errno in errno.errorcode else ""
            raise StorageError(f"{directory} is not writable: {error.strerror or error}{code}; the job writes "
                               f"{purpose} there") from error


def storage_reason(error: OSError) -> str:
    """The failure line of an OSError from writing an output (full disk, no permission, read-only)."""
    code = f" ({errno.errorcode[error.errno]})" if error.errno in errno.errorcode else ""
    where = f" {error.filename}" if error.filename else ""
    return (f"StorageError: cannot write{where}: {error.strerror or error}{code}; files already in place are "
            f"untouched (each is written to a temporary file and renamed)")


def clear_previous_outcome(paths: SageMakerPaths) -> None:
    """Remove the failure/success files of an earlier run in the same tree (a local rerun or a resume), so that
    they describe this run only."""
    for path in (paths.failure_file, paths.success_file):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _read_channel(paths: SageMakerPaths, channel: str, configs: dict, hp: Hyperparameters,
                  source_vocab: Vocabulary, target_vocab: Vocabulary) -> ParallelData:
    def streams():
        for source in channel_record_sources(paths, channel, 0, configs):
            if source.is_pipe:
                with open(source.path, "rb") as stream:
                    yield f"channel '{channel}' {source.path}", read_pairs_from_stream(stream, source.path)
            else:
                yield f"channel '{channel}' {source.path}", read_pairs(source.path)
    data = read_parallel_data(streams(), len(source_vocab), len(target_vocab), hp.max_seq_len_source,
                              hp.max_seq_len_target)
    check_condition(len(data) > 0, f"channel '{channel}': no usable sentence pairs in {paths.channel_dir(channel)}"
                                   f" ({data.num_skipped_empty} pairs with an empty side skipped)")
    logger.info("channel %s: %d pairs (%d truncated to %d/%d tokens, %d empty skipped)", channel, len(data),
                data.num_truncated, hp.max_seq_len_source, hp.max_seq_len_target, data.num_skipped_empty)
    return data


def build_iterators(hp: Hyperparameters, train: ParallelData, validation: ParallelData, rank: int,
                    num_workers: int, num_contexts: int):
    ratio_mean, _ = mean_length_ratio(train.source_lengths, train.target_lengths)
    max_source, max_target = hp.max_seq_len_source, hp.max_seq_len_target + 1
    buckets = define_parallel_buckets(max_source, max_target, hp.bucket_width, ratio_mean) \
        if hp.bucketing_enabled else [(max_source, max_target)]
    train_iter = BucketBatchIterator(train, buckets, hp.batch_size, hp.seed, True, rank, num_workers,
                                     min_batch_size=num_contexts, short_buckets=short_bucket_indices(hp, buckets))
    validation_iter = BucketBatchIterator(validation, buckets, hp.batch_size, hp.seed, shuffle=False)
    check_condition(train_iter.num_batches() > 0,
                    f"channel 'train': {len(train)} pairs make no batch for {num_workers} worker(s)")
    return train_iter, validation_iter


def run(paths: SageMakerPaths, hp: Hyperparameters, stop_signal_trainer: list, distributed_holder: list,
        hooks=None) -> None:
    """The whole job; raises on any failure (the caller's funnel reports it). `hooks`: see main()."""
    resource = read_resource_config(paths)
    check_writable(paths, resource.is_master)
    check_model_channel(paths, hp)  # fine-tuning: a bad archive or another architecture fails before any data is read
    configs = read_input_data_config(paths)
    source_vocab_path, target_vocab_path = vocab_files(paths, configs)
    source_vocab, target_vocab = Vocabulary.load(source_vocab_path), Vocabulary.load(target_vocab_path)
    check_joint_vocabulary(hp, source_vocab, target_vocab, source_vocab_path, target_vocab_path)
    subword = load_checked_subword_models(os.path.dirname(source_vocab_path), source_vocab, target_vocab)
    if subword is not None:
        logger.info("channel vocab: SentencePiece subword models (%s); the model will take and give raw text",
                    "joint" if subword.joint else "separate")
    contexts = contexts_for(hp.devices)
    distributed, rank, num_workers, kvstore = None, 0, 1, local_kvstore_type(contexts)
    if resource.num_hosts > 1:  # first, so that a host failing on its data fails its peers at once
        from .training.distributed import start_parameter_server
        distributed = start_parameter_server(resource, hp.ps_port, int(hp.reserved.get("_ps_verbose", 0) or 0),
                                             peer_timeout_seconds=hp.peer_timeout_seconds,
                                             on_fatal=lambda reason: write_failure(paths, reason))
        distributed_holder.append(distributed)
        kvstore = distributed.create_kvstore("dist_sync")
        rank, num_workers = resource.host_rank, resource.num_hosts
    train = _read_channel(paths, constants.TRAIN_CHANNEL, configs, hp, source_vocab, target_vocab)
    shortlist = build_shortlist(hp, train, len(source_vocab), len(target_vocab)) if resource.is_master else None
    validation = _read_channel(paths, constants.VALIDATION_CHANNEL, configs, hp, source_vocab, target_vocab)
    check_condition(hp.batch_size >= len(contexts),
                    f"hyperparameter batch_size={hp.batch_size} is smaller than the {len(contexts)} devices")
    train_iter, validation_iter = build_iterators(hp, train, validation, rank, num_workers, len(contexts))
    if distributed is not None:  # hosts with different data (ShardedByS3Key, Pipe) must still step together
        counts = distributed.watchdog.allgather([train_iter.num_batches(), train_iter.num_batches(short_only=True)])
        train_iter.max_batches_per_epoch = min(count[0] for count in counts)
        train_iter.max_short_batches_per_epoch = min(count[1] for count in counts)
    check_short_phase(hp, train_iter, num_workers)
    ratio_mean, ratio_std = mean_length_ratio(train.source_lengths, train.target_lengths)
    config = ModelConfig.from_hyperparameters(hp, len(source_vocab), len(target_vocab), ratio_mean, ratio_std)
    mx.random.seed(hp.seed)
    np.random.seed(hp.seed)
    enable_mixed_precision(hp.precision, contexts)
    model = Seq2SeqModel(config)
    model.initialize_parameters(initializer_for(hp), contexts)
    prepare_parameters(paths, hp, model, source_vocab, target_vocab, subword)  # model channel, embeddings, freezing
    model.hybridize()
    logger.info("model: %s; devices %s; kvstore %s; %d worker(s)", config.to_json().replace("\n", ""),
                contexts, kvstore if isinstance(kvstore, str) else "dist_sync", num_workers)
    is_master = resource.is_master
    event_dir = event_directory(hp.tensorboard, is_master, paths)
    tensorboard = None if event_dir is None else TensorBoardLog(
        event_dir, ValidationSamples(validation, source_vocab, target_vocab, contexts[0], subword))
    setup = TrainingSetup(hp=hp, model=model, contexts=contexts, train_iter=train_iter,
                          validation_iter=validation_iter, validation_data=validation, source_vocab=source_vocab,
                          target_vocab=target_vocab, checkpoint_dir=paths.checkpoint_dir,
                          output_data_dir=paths.output_data_dir, host=resource.current_host,
                          is_master=is_master, kvstore=kvstore, num_workers=num_workers, distributed=distributed,
                          metric_printer=lambda line: print(line, flush=True), subword=subword, hooks=hooks,
                          shortlist=shortlist, tensorboard=tensorboard)
    trainer = Seq2SeqTrainer(setup)
    stop_signal_trainer.append(trainer)
    try:
        state = trainer.fit()
    finally:
        if tensorboard is not None:
            tensorboard.close()
    if is_master:
        export_model(paths, model, source_vocab, target_vocab, hp, state, subword, shortlist,
                     evaluate=None if trainer.interrupted else trainer.validation_metrics)
    logger.info("training %s after %d updates (%d checkpoints; best %s %.4g at checkpoint %d)",
                "stopped on request" if trainer.interrupted else "finished", state.num_updates,
                state.num_checkpoints, hp.optimized_metric, state.best_metric or float("nan"),
                state.best_checkpoint)


def build_shortlist(hp: Hyperparameters, train: ParallelData, source_vocab_size: int,
                    target_vocab_size: int) -> Optional[Shortlist]:
    """The decoding shortlist of the training pairs (`shortlist_k`, `shortlist_frequent`); None when shortlist_k
    is 0."""
    if hp.shortlist_k == 0:
        return None
    return shortlist_from_pairs(train.sources, train.targets, source_vocab_size, target_vocab_size,
                                hp.shortlist_k, hp.shortlist_frequent)


def export_model(paths: SageMakerPaths, model: Seq2SeqModel, source_vocab: Vocabulary, target_vocab: Vocabulary,
                 hp: Hyperparameters, state: ts.TrainingState, subword: Optional[SubwordModels] = None,
                 shortlist: Optional[Shortlist] = None, evaluate: Optional[Callable[[], dict]] = None):
    """Write /opt/ml/model from the exported parameters (see load_exported_parameters): params, config, vocabularies,
    metrics, the subword models of the vocab channel when it has them and the decoding shortlist when there is one.
    `evaluate()` gives the validation metrics of the model as loaded (Seq2SeqTrainer.validation_metrics): recorded
    in metrics.json for an averaged model (None: not evaluated, e.g. after SIGTERM)."""
    averaged = load_exported_parameters(paths, model, hp, state)
    averaged_metrics = None
    if averaged:
        averaged_metrics = {"checkpoints": averaged, "updates": [r["updates"] for r in state.history
                                                                 if r["checkpoint"] in averaged]}
        averaged_metrics.update((evaluate and evaluate()) or {})
        logger.info("exported model: the average of the parameters of checkpoints %s: %s", averaged,
                    ", ".join(f"{k} {v:.4g}" for k, v in averaged_metrics.items() if k.startswith("validation_"))
                    or "not evaluated")
    decode_defaults = {"beam_size": hp.beam_size, "length_penalty_alpha": hp.length_penalty_alpha,
                       "length_penalty_beta": hp.length_penalty_beta, "hyperparameters": hp.to_dict()}
    write_model_dir(paths.model_dir, model, source_vocab, target_vocab, decode_defaults, subword, shortlist)
    best_record = next((r for r in state.history if r["checkpoint"] == state.best_checkpoint), None)
    metrics = {"best_checkpoint": best_record, "num_updates": state.num_updates,
               "num_checkpoints": state.num_checkpoints, "optimized_metric": hp.optimized_metric}
    if averaged_metrics is not None:
        metrics["averaged_checkpoints"] = averaged_metrics
    write_model_metrics(paths.model_dir, metrics)


def load_exported_parameters(paths: SageMakerPaths, model: Seq2SeqModel, hp: Hyperparameters,
                             state: ts.TrainingState) -> List[int]:
    """Load into `model` the parameters to export: with average_checkpoints >= 2 the mean of the kept parameters of
    the last N checkpoints (returns their numbers), otherwise (or when none are kept) the best checkpoint's
    (returns []); with no best checkpoint either, the model keeps its current parameters."""
    if hp.average_checkpoints >= 2:
        averaged = load_average(model, paths.checkpoint_dir, state.num_checkpoints, hp.average_checkpoints)
        if averaged:
            return averaged
    best = ts.best_params_path(paths.checkpoint_dir)
    if os.path.exists(best):
        model.load_parameters(best, ctx=model.collect_params().list_ctx())
    return []


def main(hooks=None) -> int:
    """The `train` entry point. `hooks`: a seq2seq.training.trainer.TrainingHooks that tests pass to watch or stop
    the loop in a real job; `python -m seq2seq.train_job` and the container's `train` never pass one."""
    configure_logging()
    paths = SageMakerPaths()
    trainers, distributed = [], []

    def on_sigterm(signum, frame):
        logger.info("SIGTERM received: saving the training state and stopping")
        for trainer in trainers:
            trainer.request_stop()
        if not trainers:
            raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_sigterm)
    code = 0
    try:
        clear_previous_outcome(paths)
        hp = load_hyperparameters_file(paths.hyperparameters_file)
        run(paths, hp, trainers, distributed, hooks)
        os.makedirs(paths.output_dir, exist_ok=True)
        write_text(paths.success_file, "")
    except UserError as error:
        code = 2
        logger.error("training failed (user error): %s\n%s", error, traceback.format_exc())
        write_failure(paths, f"UserError: {error}")
    except StorageError as error:
        code = 1
        logger.error("training failed (storage): %s\n%s", error, traceback.format_exc())
        write_failure(paths, f"StorageError: {error}")
    except OSError as error:  # an unwrapped write failure (model export, metric files)
        code = 1
        logger.error("training failed (storage): %s\n%s", error, traceback.format_exc())
        write_failure(paths, storage_reason(error) if error.errno in STORAGE_ERRNOS else
                      f"InternalError: {type(error).__name__}: {error}. This is a fault of the training job, not of "
                      "the input; see the log for the traceback.")
    except DistributedError as error:
        code = 1
        logger.error("training failed (multi-host): %s\n%s", error, traceback.format_exc())
        write_failure(paths, f"DistributedError: {error}")
    except Exception as error:  # the one funnel for everything else: one line in the failure file, trace in the log
        logger.error("training failed (internal error): %s\n%s", error, traceback.format_exc())
        job_hp = locals().get("hp")
        if failure_text.is_out_of_memory(error):
            code = 2
            write_failure(paths, "UserError: " + failure_text.training_out_of_memory(
                error, job_hp.devices if job_hp else "?", job_hp.batch_size if job_hp else None))
        else:
            code = 1
            write_failure(paths, f"InternalError: {type(error).__name__}: {failure_text.one_line(error)}. This is a "
                                 "fault of the training job, not of the input; see the log for the traceback.")
    if distributed:
        distributed[0].exit(code, None if code == 0 else _read(paths.failure_file))
    return code


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read().strip()
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
