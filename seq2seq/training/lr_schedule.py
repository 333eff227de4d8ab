"""Learning-rate schedules with linear warm-up: plateau_reduce, fixed_rate_inv_t, fixed_rate_inv_sqrt_t,
linear_decay."""

import math
from dataclasses import asdict, dataclass


@dataclass
class LearningRateSchedule:
    """Learning rate as a function of the update count and of the checkpoints without improvement.

    inv_t: lr / (1 + t/T); inv_sqrt_t: lr / sqrt(1 + 3t/T); T = half_life × updates per checkpoint.
    plateau_reduce: multiply by `factor` after `threshold` checkpoints without improvement.
    linear_decay: the full rate at the end of warm-up (update warmup - 1), then falling linearly to exactly zero
    at the last update, number `total_updates` - 1 (BERT's schedule; `total_updates` = max_num_batches).
    Warm-up: the rate rises linearly over the first `warmup` updates.
    """

    kind: str
    base_rate: float
    updates_per_checkpoint: int
    half_life: int = 10
    factor: float = 0.5
    threshold: int = 3
    warmup: int = 0
    plateau_scale: float = 1.0
    checkpoints_since_reduce: int = 0
    total_updates: int = -1

    def rate(self, num_updates: int) -> float:
        """Learning rate for update number `num_updates` (0-based)."""
        t = num_updates
        warm = min(1.0, (t + 1) / self.warmup) if self.warmup > 0 else 1.0
        horizon = self.half_life * self.updates_per_checkpoint
        if self.kind == "fixed_rate_inv_t":
            rate = self.base_rate / (1.0 + t / horizon)
        elif self.kind == "fixed_rate_inv_sqrt_t":
            rate = self.base_rate / math.sqrt(1.0 + 3.0 * t / horizon)
        elif self.kind == "linear_decay":
            rate = self.base_rate * self._linear_decay_share(t)
        else:
            rate = self.base_rate * self.plateau_scale
        return rate * warm

    def _linear_decay_share(self, t: int) -> float:
        """1 at the end of warm-up, falling linearly to 0 at update total_updates - 1 (and after it)."""
        last, peak = self.total_updates - 1, max(self.warmup - 1, 0)
        if last <= peak:
            return 0.0 if t >= last else 1.0
        return min(1.0, max(0.0, (last - t) / (last - peak)))

    def on_checkpoint(self, improved: bool) -> bool:
        """Record a checkpoint's outcome; returns True when the rate was just reduced."""
        if self.kind != "plateau_reduce":
            return False
        self.checkpoints_since_reduce = 0 if improved else self.checkpoints_since_reduce + 1
        if self.checkpoints_since_reduce >= self.threshold:
            self.plateau_scale *= self.factor
            self.checkpoints_since_reduce = 0
            return True
        return False

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict) -> "LearningRateSchedule":
        return cls(**state)


def schedule_from_hyperparameters(hp) -> LearningRateSchedule:
    return LearningRateSchedule(kind=hp.lr_scheduler_type, base_rate=hp.learning_rate,
                                updates_per_checkpoint=hp.checkpoint_frequency_num_batches,
                                half_life=hp.fixed_rate_lr_half_life, factor=hp.plateau_reduce_lr_factor,
                                threshold=hp.plateau_reduce_lr_threshold, warmup=hp.warmup_num_batches,
                                total_updates=hp.max_num_batches)
