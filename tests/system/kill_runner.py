"""Run the training job and SIGKILL it at a chosen point: `python -m tests.system.kill_runner POINT N`.

POINT is where the N-th occurrence (1-based) kills the process:
  update        right after the N-th parameter update of this run (its on_update hook), before it is checkpointed
  evaluation    inside the N-th checkpoint's validation pass
  write         while the N-th checkpoint of this run is being written (parameters written, optimizer next)
  rename        between the two renames that swap the N-th checkpoint in (the old state is moved aside)
"""
import os
import signal
import sys


def main() -> int:
    point, n = sys.argv[1], int(sys.argv[2])
    import seq2seq.train_job as train_job
    from seq2seq.training import trainer as trainer_module
    from seq2seq.training import training_state
    from seq2seq.training.trainer import TrainingHooks

    count = {"n": 0}

    def hit() -> None:
        count["n"] += 1
        if count["n"] == n:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    hooks = TrainingHooks()
    if point == "update":
        hooks = TrainingHooks(on_update=lambda state: hit())
    elif point == "evaluation":
        original_eval = trainer_module.perplexity_and_accuracy

        def evaluate(*args, **kwargs):
            hit()
            return original_eval(*args, **kwargs)
        trainer_module.perplexity_and_accuracy = evaluate
    elif point == "write":
        original_save = training_state.save_training_state

        def save(checkpoint_dir, state, save_params, save_optimizer):
            def optimizer(path):
                hit()
                save_optimizer(path)
            return original_save(checkpoint_dir, state, save_params, optimizer)
        training_state.save_training_state = save
    elif point == "rename":
        real_rename = os.rename

        def rename(source, target):
            real_rename(source, target)
            if source.endswith("training_state") and target.endswith("training_state.old"):
                hit()
        training_state.os.rename = rename  # only the rename of the state directory aside is counted
    else:
        raise SystemExit(f"unknown kill point {point!r}")
    return train_job.main(hooks=hooks)


if __name__ == "__main__":
    sys.exit(main())
