"""Bad-input cases: damaged checkpoints, and a disk that fails while the job writes."""
import contextlib
import errno
import os
import shutil

from tests.bad_inputs import case
from tests.bad_inputs.job import (JOB_HP, job_case, make_tree, overwrite, rewrite_json, run_job, trained_tree,
                                  truncate, without)
from tests.sagemaker_tree import write_hyperparameters


def state_dir(base):
    return os.path.join(base, "checkpoints", "training_state")


def state_file(base, name):
    return os.path.join(state_dir(base), name)


def halve(path):
    truncate(path, os.path.getsize(path) // 2)


def checkpoint_case(case_id: str, what: str):
    """A case that breaks the checkpoint of a trained tree, then runs the job again."""
    return job_case(case_id, "checkpoints", what, tree=trained_tree)


# checkpoints
@checkpoint_case("ckpt-params-truncated", "training_state/params cut to half its size")
def _(base):
    halve(state_file(base, "params"))


@checkpoint_case("ckpt-params-flipped", "one byte of training_state/params changed (same size)")
def _(base):
    path = state_file(base, "params")
    with open(path, "r+b") as stream:
        stream.seek(os.path.getsize(path) // 2)
        byte = stream.read(1)
        stream.seek(-1, os.SEEK_CUR)
        stream.write(bytes([byte[0] ^ 0xFF]))


@checkpoint_case("ckpt-state-missing", "training_state/state.json deleted")
def _(base):
    os.remove(state_file(base, "state.json"))


@checkpoint_case("ckpt-state-garbage", "training_state/state.json overwritten with garbage")
def _(base):
    overwrite(state_file(base, "state.json"), b"\x00\x01garbage")


@checkpoint_case("ckpt-state-not-json", "training_state/state.json cut off (not valid JSON)")
def _(base):
    truncate(state_file(base, "state.json"), 100)


@checkpoint_case("ckpt-state-field-missing", "training_state/state.json without num_updates")
def _(base):
    rewrite_json(state_file(base, "state.json"), without("num_updates"))


@checkpoint_case("ckpt-optimizer-missing", "training_state/optimizer.states deleted")
def _(base):
    os.remove(state_file(base, "optimizer.states"))


@checkpoint_case("ckpt-old-format-truncated", "a checkpoint without recorded sizes whose params is truncated")
def _(base):
    rewrite_json(state_file(base, "state.json"), without("files"))
    halve(state_file(base, "params"))


@checkpoint_case("ckpt-other-model", "the checkpoint was written by a model with another rnn_num_hidden")
def _(base):
    write_hyperparameters(base, dict(JOB_HP, rnn_num_hidden=48))


@checkpoint_case("ckpt-dir-is-file", "checkpoints/training_state is a file")
def _(base):
    shutil.rmtree(state_dir(base))
    overwrite(state_dir(base), "x")


# disk
@contextlib.contextmanager
def patched(target, name, replacement):
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


def run_patched(base, target, name, make_replacement):
    """Run the job with target.<name> replaced by make_replacement(the original)."""
    with patched(target, name, make_replacement(getattr(target, name))):
        return run_job(base)


def resume_patched(base, name, make_replacement):
    """Resume a trained tree for two more updates with seq2seq.training.training_state.<name> replaced."""
    from seq2seq.training import training_state
    trained_tree(base)
    write_hyperparameters(base, dict(JOB_HP, max_num_batches=4))
    return run_patched(base, training_state, name, make_replacement)


def full_disk_save(path):
    """What MXNet does when the disk fills while it writes a file: write to /dev/full."""
    import mxnet as mx
    mx.nd.save("/dev/full", {"x": mx.nd.ones((256, 256))})


def no_space(path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


@case("disk-full-checkpoint", "disk", "the disk fills while the checkpoint's parameters are written")
def _(base):
    def with_full_disk(original):
        def save(checkpoint_dir, state, save_params, save_optimizer):
            return original(checkpoint_dir, state, full_disk_save, save_optimizer)
        return save
    return resume_patched(base, "save_training_state", with_full_disk)


@case("disk-no-permission-state", "disk", "EACCES while state.json of a checkpoint is written")
def _(base):
    def refusing(original):
        def refuse(path, text):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return refuse
    return resume_patched(base, "write_text_atomically", refusing)


@case("disk-full-best", "disk", "ENOSPC while params.best is written")
def _(base):
    from seq2seq.training import training_state

    def full_for_best(original):
        def save(path, write, intact):
            return original(path, no_space if path.endswith("params.best") else write, intact)
        return save
    return run_patched(make_tree(base), training_state, "save_file_atomically", full_for_best)


@case("disk-full-model", "disk", "ENOSPC while /opt/ml/model/params.best is exported")
def _(base):
    from seq2seq import model_dir
    return run_patched(make_tree(base), model_dir, "save_parameters_atomically",
                       lambda original: lambda model, path: no_space(path))


def unwritable(name):
    """break_tree for job_case: /opt/ml/<name> is a link to a directory nobody may write to."""
    return lambda base: os.symlink("/sys/kernel", os.path.join(base, name))


job_case("disk-output-unwritable", "disk", "/opt/ml/output is not writable (failure reported on stderr)")(
    unwritable("output"))
job_case("disk-checkpoints-unwritable", "disk", "/opt/ml/checkpoints is not writable")(unwritable("checkpoints"))
