"""The training loop: data-parallel updates, periodic checkpoints with evaluation, early stopping, resume."""

import logging
import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, List, Optional, Union

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..data.batch import Batch
from ..data.batch_iterator import BucketBatchIterator
from ..data.dataset import ParallelData
from ..data.subword import SubwordModels
from ..data.vocab import Vocabulary
from ..hyperparameters import Hyperparameters
from ..inference.shortlist import Shortlist
from ..inference.translator import DecodeOptions
from ..model.seq2seq_model import Seq2SeqModel
from . import precision
from . import training_state as ts
from .checkpoint_averaging import keep_checkpoint_parameters
from .curriculum import SHORT, Curriculum
from .evaluation import ValidationDecoding, perplexity, perplexity_and_accuracy, validation_bleu
from .loss import MaskedCrossEntropy, fused_softmax_loss
from .lr_schedule import LearningRateSchedule, schedule_from_hyperparameters
from .metrics_log import metric_lines, write_metric_files
from .optimizers import create_optimizer
from .tensorboard_log import ProgressScalars, TensorBoardLog

if TYPE_CHECKING:
    from .distributed import DistributedSetup

logger = logging.getLogger(__name__)

LOWER_IS_BETTER = {"perplexity": True, "accuracy": False, "bleu": False}


class StopTraining(Exception):
    """Raised by a TrainingHooks callback to stop training as SIGTERM does (see TrainingHooks)."""


def _ignore(_) -> None:
    return None


@dataclass
class TrainingHooks:
    """Callbacks that watch the training loop, for tests and tools; by default they do nothing. Given as
    `TrainingSetup.hooks` (a whole job: `train_job.main(hooks=...)`); the production job sets none.

    on_update(state): after every parameter update, once `state` counts it (`state.num_updates` is the update just
        made) and its progress line, if one is due, is logged; before the loop looks for a stop request or a due
        checkpoint. The loss sums in `state` lag behind: they are synchronized at progress lines and checkpoints.
    on_checkpoint(record): after every complete checkpoint, with the record just appended to `state.history`
        (metrics, "improved", ...) once the metric files and the training state are saved. Not called when a stop
        request interrupts the evaluation: nothing is recorded then.

    Both get the loop's live objects: read them, never change them. Raising StopTraining calls request_stop(), as
    SIGTERM arriving at that moment would: right after the hook the loop saves the state (see _stop_now) and fit()
    returns, so that a restart resumes exactly there. Any other exception ends fit() with that exception.
    """

    on_update: Callable[[ts.TrainingState], None] = _ignore
    on_checkpoint: Callable[[dict], None] = _ignore


@dataclass
class TrainingSetup:
    """Everything the loop needs. `distributed` is a started DistributedSetup or None (single host)."""

    hp: Hyperparameters
    model: Seq2SeqModel
    contexts: List[mx.Context]
    train_iter: BucketBatchIterator
    validation_iter: BucketBatchIterator
    validation_data: ParallelData
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    checkpoint_dir: str
    output_data_dir: str
    host: str = "algo-1"
    is_master: bool = True
    kvstore: Union[str, mx.kv.KVStore] = "local"    # a local kvstore type, or the created dist_sync kvstore
    num_workers: int = 1
    distributed: Optional["DistributedSetup"] = None
    metric_printer: Callable[[str], None] = print
    subword: Optional[SubwordModels] = None   # the vocab channel's SentencePiece models: BLEU on detokenised text
    hooks: Optional[TrainingHooks] = None
    shortlist: Optional[Shortlist] = None     # the decoding shortlist: its coverage is reported with BLEU
    tensorboard: Optional[TensorBoardLog] = None   # event files (host 0, tensorboard=true); None writes none


def initialize_kvstore(trainer: gluon.Trainer) -> None:
    """Put the parameters into the kvstore (with dist_sync: rank 0's) and wait until every pull has landed.

    gluon.Trainer does this lazily inside the first step(), where the engine may send a key's gradient push-pull to
    the dist_sync server before that key's parameter pull: the server then answers the pull with the summed
    gradients, and that worker trains on other values for the parameter from then on. MXNet 1.9 has no public entry
    point for gluon.Trainer's own initialization, so this is the one place that uses its private members.
    """
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    mx.nd.waitall()


class Seq2SeqTrainer:
    """`fit()` runs until a stopping criterion or a stop request (SIGTERM) and returns the final TrainingState."""

    def __init__(self, setup: TrainingSetup):
        self.setup = setup
        self.hp = setup.hp
        self.model = setup.model
        self.loss = MaskedCrossEntropy(self.hp.label_smoothing, with_accuracy=False)
        self.trainer = gluon.Trainer(self.model.collect_params(), create_optimizer(self.hp), kvstore=setup.kvstore,
                                     update_on_kvstore=False)
        self.gradient_step = precision.GradientStep(
            self.trainer, self.model.collect_params(), self.hp.gradient_clip_norm, setup.num_workers,
            precision.DynamicLossScale() if self.hp.precision == "fp16" else None)
        self.schedule: LearningRateSchedule = schedule_from_hyperparameters(self.hp)
        self.curriculum = Curriculum.from_hyperparameters(self.hp)
        self.hooks = setup.hooks or TrainingHooks()
        self.stop_requested = False
        self.interrupted = False
        self._pending = []
        self._last_grad_norm = None   # the last update's global gradient norm when step() measured it

    # ----- setup -----
    def request_stop(self) -> None:
        """Called from the SIGTERM handler: the loop saves its state after the current update and returns."""
        self.stop_requested = True

    def _restore(self) -> ts.TrainingState:
        """The saved training state with parameters and optimizer state loaded, or a fresh state.

        A damaged checkpoint (see ts.load_training_state) or one that does not fit this model raises
        CheckpointError naming the file: training never silently starts from scratch over it."""
        checkpoint_dir = self.setup.checkpoint_dir
        state = ts.load_training_state(checkpoint_dir)
        if state is None:
            return ts.TrainingState(lr_schedule=self.schedule.state_dict(), hyperparameters=self.hp.to_dict(),
                                    curriculum_phase=self.curriculum.initial_phase)
        changed = sorted(name for name, value in self.hp.to_dict().items()
                         if name in state.hyperparameters and state.hyperparameters[name] != value)
        hint = ("; it was written with other hyperparameters: " + ", ".join(
            f"{name} {state.hyperparameters[name]!r} then, {self.hp.to_dict()[name]!r} now" for name in changed[:6])
            if changed else "")
        for path, load in ((ts.params_path(checkpoint_dir),
                            lambda p: self.model.load_parameters(p, ctx=self.setup.contexts)),
                           (ts.optimizer_path(checkpoint_dir), self.trainer.load_states)):
            try:
                load(path)
            except Exception as error:  # MXNetError, AssertionError, pickle or value errors from a bad file
                reason = ts.short_reason(error)
                raise ts.damaged(path, f"cannot be loaded ({type(error).__name__}: {reason}){hint}") from error
        try:
            self.schedule = LearningRateSchedule.from_state_dict(state.lr_schedule)
        except Exception as error:
            raise ts.damaged(os.path.join(ts.state_dir(checkpoint_dir), ts.STATE_FILE),
                             f"has an unusable lr_schedule ({type(error).__name__}: {error})") from error
        if self.gradient_step.loss_scale is not None and state.loss_scale:
            try:
                self.gradient_step.loss_scale = precision.DynamicLossScale.from_state_dict(state.loss_scale)
            except Exception as error:
                raise ts.damaged(os.path.join(ts.state_dir(checkpoint_dir), ts.STATE_FILE),
                                 f"has an unusable loss_scale ({type(error).__name__}: {error})") from error
        logger.info("resumed from %s at update %d (epoch %d, batch %d)", checkpoint_dir,
                    state.num_updates, state.epoch, state.batch_index)
        return state

    # ----- loop -----
    def fit(self) -> ts.TrainingState:
        """Resume (or start), then update, log, call on_update and checkpoint until finished or stopped."""
        state = self._restore()
        initialize_kvstore(self.trainer)
        setup = self.setup
        if setup.tensorboard is not None:
            setup.tensorboard.open(state.num_updates)
        logger.info("%d training batches per epoch per worker; buckets %s", setup.train_iter.num_batches(),
                    setup.train_iter.bucket_table())
        if state.curriculum_phase == SHORT:
            logger.info("length curriculum: %d batches per short epoch per worker; all buckets from %s",
                        setup.train_iter.num_batches(short_only=True), self.curriculum.describe_switch())
        self._start_log_interval(state)
        if self._checkpoint_due(state):
            self._checkpoint(state)           # a stop at a checkpoint update saved the state before evaluating
        while not self._finished(state):
            if self.curriculum.advance(state):
                logger.info("length curriculum: all buckets from update %d (epoch %d)", state.num_updates,
                            state.epoch)
            for batch in setup.train_iter.epoch(self.curriculum.position(state)):
                self._check_peers(state)
                applied = self._update(batch, state)
                if applied:
                    if state.num_updates % self.hp.log_frequency_num_batches == 0:
                        self._log_progress(state)
                    self._call_hook(self.hooks.on_update, state)
                if self.stop_requested:
                    return self._stop_now(state)
                if applied and state.num_updates % self.hp.checkpoint_frequency_num_batches == 0:
                    self._checkpoint(state)
                    if self.stop_requested:  # during the evaluation (the restart redoes it) or from on_checkpoint
                        return self._stop_now(state)
                if self._finished(state) or self.curriculum.switch_due(state):
                    break
            else:
                state.epoch += 1
                state.batch_index = 0
        if not state.history or state.history[-1]["updates"] != state.num_updates:
            self._checkpoint(state)
        self._finish_distributed()
        return state

    def _call_hook(self, hook: Callable, argument) -> None:
        """Call one of the TrainingHooks; its StopTraining is a stop request, as from SIGTERM."""
        try:
            hook(argument)
        except StopTraining:
            logger.info("stop requested by a training hook")
            self.request_stop()

    def _checkpoint_due(self, state: ts.TrainingState) -> bool:
        """True when `state` is at a checkpoint update whose checkpoint has not been recorded yet."""
        at_boundary = state.num_updates > 0 and state.num_updates % self.hp.checkpoint_frequency_num_batches == 0
        return at_boundary and (not state.history or state.history[-1]["updates"] != state.num_updates)

    def _finished(self, state: ts.TrainingState) -> bool:
        hp = self.hp
        if 0 < hp.max_num_batches <= state.num_updates:
            return True
        if hp.max_num_epochs is not None and state.epoch >= hp.max_num_epochs:
            return True
        return (state.checkpoints_without_improvement >= hp.checkpoint_threshold
                and state.epoch >= hp.min_num_epochs)

    def _check_peers(self, state: ts.TrainingState) -> None:
        """Multi-host: before each update, raise DistributedError if a peer died (no update on wrong gradients)."""
        if self.setup.distributed is not None:
            self.setup.distributed.check(state.num_updates)

    def _update(self, batch: Batch, state: ts.TrainingState) -> bool:
        """One data-parallel update on `batch` (split across the contexts), counted in `state`.

        Returns False when the update was skipped because the loss-scaled gradients overflowed (fp16): the
        batch is consumed (`batch_index` advances) but the update is not counted (`num_updates` stays,
        `skipped_updates` grows) and its loss is not logged."""
        # Reseeding per update makes dropout and sampling a function of the update number: resume is exact.
        mx.random.seed(self.hp.seed * 1000003 + state.num_updates)
        self.trainer.set_learning_rate(self.schedule.rate(state.num_updates))
        nll_sums = self._forward_backward(batch, state.num_updates)
        result = self.gradient_step.step()
        self._last_grad_norm = result.grad_norm
        state.batch_index += 1
        if self.gradient_step.loss_scale is not None:
            state.loss_scale = self.gradient_step.loss_scale.state_dict()
        if not result.applied:
            state.skipped_updates += 1
            return False
        self._queue_loss_sums(nll_sums, batch.num_target_tokens)
        state.num_updates += 1
        return True

    def _forward_backward(self, batch: Batch, num_updates: int) -> List[mx.nd.NDArray]:
        """Loss and gradients of `batch` on every context; returns the per-context NLL sums (not synchronized)."""
        mask = self._sampling_mask(num_updates, batch)
        shards = (batch if mask is None else replace(batch, sample_mask=mask)).split_and_load(
            self.setup.contexts)
        with autograd.record():
            if self.gradient_step.loss_scaling:  # the loss value is scaled: needs the differentiable loss
                results = [self.loss(s.valid_logits(self.model), s.valid_labels) for s in shards]
                heads = [r[0] / batch.num_target_tokens for r in results]
                nll_sums = [r[1] for r in results]
            else:
                # Each worker averages over its own tokens; the kvstore sums the workers; step() divides by
                # their number. The normaliser is thus the same on every worker, whatever its batch.
                fused = [fused_softmax_loss(s.valid_logits(self.model), s.valid_labels,
                                            self.hp.label_smoothing, 1.0 / batch.num_target_tokens) for s in shards]
                heads, nll_sums = [f[0] for f in fused], [f[1] for f in fused]
        self.gradient_step.backward(heads)
        return nll_sums

    def _queue_loss_sums(self, nll_sums: List[mx.nd.NDArray], num_tokens: int) -> None:
        """Keep an update's loss sums for the next progress line or checkpoint, without synchronizing them."""
        if self._pending:  # let MXNet's engine run at most one update ahead: bounds memory and SIGTERM latency
            for previous in self._pending[-1][0]:
                previous.wait_to_read()
        self._pending.append((nll_sums, num_tokens))

    def _sampling_mask(self, num_updates: int, batch: Batch) -> Optional[np.ndarray]:
        """Scheduled sampling's choice for every position of `batch`, or None with full teacher forcing.

        `(batch, trg_len)` float32: 1 feeds the reference id, 0 the arg-max of the model's previous step (drawn
        inside the training program). Column t + 1 is drawn after column t, one uniform number per sentence, from
        a generator seeded by the update number, so that a resumed run draws the same masks.
        """
        ratio = self.hp.teacher_forcing_at(num_updates)
        if ratio >= 1.0:
            return None
        rng = np.random.RandomState((self.hp.seed * 7919 + num_updates) % (2 ** 32))
        mask = np.ones(batch.target_input.shape, dtype=np.float32)
        for position in range(1, mask.shape[1]):
            mask[:, position] = rng.rand(mask.shape[0]) < ratio
        return mask

    # ----- logging -----
    def _start_log_interval(self, state: ts.TrainingState) -> None:
        self._pending = []
        self._interval_tokens = 0
        self._log_clock = (time.time(), state.num_updates)

    def _drain_pending(self, state: ts.TrainingState) -> int:
        """Synchronize the queued loss sums into the state; returns the target tokens they cover."""
        tokens = 0
        for nll_sums, num_tokens in self._pending:
            state.train_loss_sum += sum(float(n.asscalar()) for n in nll_sums)
            state.train_tokens += num_tokens
            tokens += num_tokens
        self._pending = []
        return tokens

    def _log_progress(self, state: ts.TrainingState) -> None:
        start, updates_before = self._log_clock
        loss_sum_before = state.train_loss_sum
        self._interval_tokens += self._drain_pending(state)
        elapsed = max(time.time() - start, 1e-9)
        updates = state.num_updates - updates_before
        rate = updates / elapsed
        remaining = self.setup.train_iter.num_batches(short_only=state.curriculum_phase == SHORT) - state.batch_index
        logger.info("epoch=%d batch=%d updates=%d updates/s=%.3f target_tokens/s=%.1f train_perplexity=%.3f "
                    "lr=%.3g eta_epoch=%.0fs", state.epoch, state.batch_index, state.num_updates, rate,
                    self._interval_tokens / elapsed, perplexity(state.train_loss_sum, state.train_tokens),
                    self.trainer.learning_rate, remaining / max(rate, 1e-9))
        if self.gradient_step.loss_scale is not None:
            logger.info("fp16 loss scale %g; %d updates skipped for overflow so far",
                        self.gradient_step.loss_scale.scale, state.skipped_updates)
        if self.setup.tensorboard is not None:   # the gradient norm is measured here only if step() did not
            norm = self._last_grad_norm if self._last_grad_norm is not None else self.gradient_step.global_norm()
            self.setup.tensorboard.progress(state.num_updates, ProgressScalars(
                state.train_loss_sum - loss_sum_before, self._interval_tokens, self.trainer.learning_rate, norm,
                elapsed))
        self._interval_tokens = 0
        self._log_clock = (time.time(), state.num_updates)

    # ----- checkpoints -----
    def _checkpoint(self, state: ts.TrainingState) -> None:
        """Evaluate, decide, log, save (the metric lines come before the save, as they always did), then call
        on_checkpoint."""
        record = self._evaluate(state)
        if record is None:
            return  # stop requested while decoding: nothing recorded, the restart evaluates again
        lr_reduced = self._decide(state, record)
        self._log_checkpoint(state, record, lr_reduced)
        self._save_checkpoint(state, record["improved"])
        if self.setup.tensorboard is not None:
            self.setup.tensorboard.checkpoint(record, self.model, self._decode_options())
        self._start_log_interval(state)
        self._call_hook(self.hooks.on_checkpoint, record)

    def _evaluate(self, state: ts.TrainingState) -> Optional[dict]:
        """The checkpoint's record: train perplexity since the last checkpoint, validation metrics, time taken.

        None when a stop request arrives while decoding for BLEU (`state` is then as it was)."""
        self._drain_pending(state)
        evaluation_start = time.time()
        record = {"checkpoint": state.num_checkpoints + 1, "epoch": state.epoch, "updates": state.num_updates,
                  "learning_rate": self.trainer.learning_rate,
                  "train_perplexity": perplexity(state.train_loss_sum, state.train_tokens)}
        metrics = self.validation_metrics()
        if metrics is None:
            return None
        record.update(metrics)
        record["evaluation_seconds"] = round(time.time() - evaluation_start, 3)
        return record

    def validation_metrics(self) -> Optional[dict]:
        """The model's validation metrics with its current parameters: `validation_perplexity`,
        `validation_accuracy`, and with bleu_sample_size != 0 `validation_bleu` (and `validation_shortlist_coverage`
        with a shortlist). None when a stop request arrives while decoding for BLEU."""
        metrics = perplexity_and_accuracy(self.model, self.setup.validation_iter, self.setup.contexts[0])
        record = {"validation_perplexity": metrics["perplexity"], "validation_accuracy": metrics["accuracy"]}
        if self.hp.bleu_sample_size != 0:
            decoded = self._bleu()
            if decoded is None:
                return None
            record["validation_bleu"] = decoded.bleu
            if decoded.shortlist_coverage is not None:
                record["validation_shortlist_coverage"] = decoded.shortlist_coverage
        return record

    def _decide(self, state: ts.TrainingState, record: dict) -> bool:
        """Count the checkpoint in `state`: improvement (the same on every host), best, patience for early
        stopping, learning-rate schedule. Sets record["improved"]; returns True when the learning rate was reduced."""
        state.num_checkpoints += 1
        state.train_loss_sum, state.train_tokens = 0.0, 0
        improved = self._agreed(self._is_improvement(state, record))
        record["improved"] = improved
        state.history.append(record)
        if improved:
            state.best_metric = record[f"validation_{self.hp.optimized_metric}"]
            state.best_checkpoint = state.num_checkpoints
            state.checkpoints_without_improvement = 0
        else:
            state.checkpoints_without_improvement += 1
        lr_reduced = self.schedule.on_checkpoint(improved)
        state.lr_schedule = self.schedule.state_dict()
        return lr_reduced

    def _log_checkpoint(self, state: ts.TrainingState, record: dict, lr_reduced: bool) -> None:
        """The `#quality_metric:` lines SageMaker's metric regexes read (host 0 only: the regexes match any host's
        line, and a tuning job must see each objective value once), and a learning-rate reduction."""
        if self.setup.is_master:
            for line in metric_lines(self.setup.host, record):
                self.setup.metric_printer(line)
        if "validation_shortlist_coverage" in record:
            logger.info("decoding shortlist: it holds %.2f%% of the full search's output tokens on the validation "
                        "sample", 100 * record["validation_shortlist_coverage"])
        if lr_reduced:
            logger.info("no improvement for %d checkpoints: learning rate reduced to %.3g",
                        self.schedule.threshold, self.schedule.rate(state.num_updates))

    def _save_checkpoint(self, state: ts.TrainingState, improved: bool) -> None:
        """The master writes a new best, the checkpoint's parameters for averaging (average_checkpoints >= 2) and
        the metric files; every host saves the full state (each resumes from its own checkpoint directory)."""
        if self.setup.is_master:
            if improved:
                self._save_best()
            if self.hp.average_checkpoints >= 2:   # before the state: see checkpoint_averaging
                keep_checkpoint_parameters(self.setup.checkpoint_dir, state.num_checkpoints,
                                           self.hp.average_checkpoints, self.model.save_parameters)
            write_metric_files(self.setup.output_data_dir, state.history)
        self._save_state(state)

    def _agreed(self, decision: bool) -> bool:
        """With several hosts, the master's decision (its metrics may differ in the last bits)."""
        if self.setup.distributed is None:
            return decision
        return bool(self.setup.distributed.watchdog.allgather(decision)[0])

    def _is_improvement(self, state: ts.TrainingState, record: dict) -> bool:
        value = record[f"validation_{self.hp.optimized_metric}"]
        if state.best_metric is None:
            return True
        return value < state.best_metric if LOWER_IS_BETTER[self.hp.optimized_metric] else value > state.best_metric

    def _bleu(self) -> Optional[ValidationDecoding]:
        """Beam-search BLEU on the validation sample (evaluation.validation_bleu); None if a stop is requested
        meanwhile (a full-set beam search on CPU can take longer than SageMaker's 120 s between SIGTERM and
        SIGKILL)."""
        setup = self.setup
        return validation_bleu(self.model, setup.validation_data, setup.source_vocab, setup.target_vocab,
                               setup.contexts[0], self._decode_options(), self.hp.bleu_sample_size, setup.subword,
                               should_stop=lambda: self.stop_requested, shortlist=setup.shortlist)

    def _decode_options(self) -> DecodeOptions:
        """The job's decoding settings (beam_size, length penalty), as validation BLEU uses them."""
        return DecodeOptions(beam_size=self.hp.beam_size, length_penalty_alpha=self.hp.length_penalty_alpha,
                             length_penalty_beta=self.hp.length_penalty_beta)

    def _save_best(self) -> None:
        """Write params.best atomically; a failing write keeps the previous one and raises StorageError."""
        path = ts.best_params_path(self.setup.checkpoint_dir)
        try:
            os.makedirs(self.setup.checkpoint_dir, exist_ok=True)
        except OSError as error:
            raise ts.storage_error("create the checkpoint directory", self.setup.checkpoint_dir, error,
                                   "nothing was written") from error
        ts.save_file_atomically(path, self.model.save_parameters,
                                "the previous best parameters are intact" if os.path.exists(path)
                                else "no best parameters were written")

    def _save_state(self, state: ts.TrainingState) -> None:
        """The full training state (see ts.save_training_state: atomic, StorageError on a failing write)."""
        ts.save_training_state(self.setup.checkpoint_dir, state, self.model.save_parameters,
                               self.trainer.save_states)

    def _stop_now(self, state: ts.TrainingState) -> ts.TrainingState:
        """Stop requested: save the full state (no evaluation) so that a restart resumes exactly here.

        With several hosts the signal reaches them at different updates, so nothing new is saved: every host
        resumes from the last periodic checkpoint, which they all saved at the same update.
        """
        self._drain_pending(state)
        self.interrupted = True
        if self.setup.distributed is not None:
            logger.info("stop requested: multi-host job resumes from the last checkpoint (update %d)",
                        state.history[-1]["updates"] if state.history else 0)
            return state
        if self.setup.is_master:
            if not os.path.exists(ts.best_params_path(self.setup.checkpoint_dir)):
                self._save_best()
            self._save_state(state)
        logger.info("stop requested: training state saved at update %d", state.num_updates)
        return state

    def _finish_distributed(self) -> None:
        if self.setup.distributed is not None:
            self.setup.distributed.finish()
