"""curriculum=length through the real job: which batches are fed at which update, and a SIGTERM in the first
phase or at and after the switch resumes exactly (same batches, metrics and parameters as an uninterrupted run).

The data of tests/integration/test_resume.py: with curriculum_short_length=4 only the bucket of 4 source x 3 target
tokens is short (53 of the 200 pairs: 4 batches a short epoch); curriculum_fraction=0.5 of 50 updates switches
after update 25, i.e. after the first batch of short epoch 6, so the next update starts epoch 7 over all buckets.
"""

import hashlib
import os
import signal

import pytest

from seq2seq.data.batch_iterator import BucketBatchIterator
from seq2seq.training.trainer import TrainingHooks
from tests.integration.test_resume import assert_same_training, history_of, make_tree, state_of
from tests.sagemaker_tree import read_failure

pytestmark = pytest.mark.slow

FRACTION = dict(curriculum="length", curriculum_short_length=4, curriculum_fraction=0.5, max_num_batches=50)
EPOCHS = dict(curriculum="length", curriculum_short_length=4, curriculum_num_epochs=2, max_num_batches=30)
SHORT_SHAPE = (4, 4)   # source width, target width (<s> + 3 tokens) of the short bucket


def record_fed_batches(monkeypatch) -> list:
    """Every training batch the job's iterator yields from now on, in order: (epoch, batch index, short_only,
    source width, target width, digest of the batch's ids). The loop draws a batch only to update on it."""
    batches = []
    original = BucketBatchIterator.epoch

    def recording_epoch(self, position):
        for offset, batch in enumerate(original(self, position)):
            if self.shuffle:   # the training iterator (validation batches are not shuffled)
                digest = hashlib.sha1(batch.source.tobytes() + batch.labels.tobytes()).hexdigest()[:12]
                batches.append((position.epoch, position.batch_index + offset, position.short_only,
                                batch.source.shape[1], batch.labels.shape[1], digest))
            yield batch
    monkeypatch.setattr(BucketBatchIterator, "epoch", recording_epoch)
    return batches


def run_job(monkeypatch, base, sigterm_at=None) -> int:
    """train_job.main in this process on the tree `base`; `sigterm_at` sends the process a real SIGTERM right
    after that update (the job's own handler then saves the state and stops). The previous handler is put back."""
    from seq2seq import train_job
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))

    def on_update(state):
        if state.num_updates == sigterm_at:
            os.kill(os.getpid(), signal.SIGTERM)
    try:
        return train_job.main(hooks=TrainingHooks(on_update=on_update))
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def fed(monkeypatch):
    return record_fed_batches(monkeypatch)


@pytest.fixture
def job(monkeypatch):
    return lambda base, sigterm_at=None: run_job(monkeypatch, base, sigterm_at)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run with the fractional curriculum, and the batches it was fed."""
    with pytest.MonkeyPatch.context() as patch:
        batches = record_fed_batches(patch)
        base = make_tree(tmp_path_factory.mktemp("curriculum_reference"), **FRACTION)
        assert run_job(patch, base) == 0, read_failure(base)
        return base, list(batches)


def test_first_phase_feeds_only_short_buckets_then_all_buckets_from_the_switch(reference):
    base, batches = reference
    assert len(batches) == 50
    first, second = batches[:25], batches[25:]
    assert all(b[2] and (b[3], b[4]) == SHORT_SHAPE for b in first)
    assert [(b[0], b[1]) for b in first] == [(e, i) for e in range(6) for i in range(4)] + [(6, 0)]
    assert all(not b[2] for b in second)
    assert (second[0][0], second[0][1]) == (7, 0)            # the cut short epoch 6 ends; epoch 7 starts
    assert {(b[3], b[4]) for b in second} - {SHORT_SHAPE}, "the second phase must feed the longer buckets"
    assert SHORT_SHAPE in {(b[3], b[4]) for b in second}      # and the short ones still
    assert state_of(base)["curriculum_phase"] == "all"
    assert [r["updates"] for r in history_of(base)] == [20, 40, 50]
    assert [r["epoch"] for r in history_of(base)] == [4, 8, 8]   # short epochs count as epochs


def test_curriculum_num_epochs_switches_at_the_epoch(tmp_path, job, fed):
    base = make_tree(tmp_path, **EPOCHS)
    assert job(base) == 0, read_failure(base)
    assert len(fed) == 30
    assert [(b[0], b[1], b[2]) for b in fed[:8]] == [(e, i, True) for e in range(2) for i in range(4)]
    assert all((b[3], b[4]) == SHORT_SHAPE for b in fed[:8])
    assert [(b[0], b[1], b[2]) for b in fed[8:12]] == [(2, i, False) for i in range(4)]


def test_without_curriculum_the_job_feeds_full_epochs_in_todays_order(tmp_path, job, fed):
    base = make_tree(tmp_path, max_num_batches=30)
    assert job(base) == 0, read_failure(base)
    batches_per_epoch = max(b[1] for b in fed if b[0] == 0) + 1
    assert [(b[0], b[1], b[2]) for b in fed] == [(i // batches_per_epoch, i % batches_per_epoch, False)
                                                 for i in range(30)]
    assert state_of(base)["curriculum_phase"] == "all"
    assert {(b[3], b[4]) for b in fed[:batches_per_epoch]} - {SHORT_SHAPE}   # the order within an epoch: see
    # tests/unit/test_curriculum.py, which compares it with the iterator's order from before the curriculum


@pytest.mark.parametrize("sigterm_at", [
    7,      # in the first phase (the resumed run crosses the switch)
    25,     # at the switch update: saved in the short phase part-way through epoch 6
    31,     # after the switch, between checkpoints
])
def test_sigterm_and_resume_feed_the_same_batches_as_an_uninterrupted_run(tmp_path, job, fed, reference,
                                                                          sigterm_at):
    reference_base, reference_batches = reference
    base = make_tree(tmp_path, **FRACTION)
    assert job(base, sigterm_at=sigterm_at) == 0
    assert read_failure(base) is None
    saved = state_of(base)
    assert saved["num_updates"] == sigterm_at
    assert saved["curriculum_phase"] == ("short" if sigterm_at <= 25 else "all")
    assert len(fed) == sigterm_at
    assert job(base) == 0, read_failure(base)
    assert fed == reference_batches
    assert_same_training(base, reference_base)


def test_sigterm_in_a_short_epoch_of_curriculum_num_epochs_resumes_exactly(tmp_path, job, fed):
    reference_base = make_tree(tmp_path / "reference", **EPOCHS)
    assert job(reference_base) == 0
    reference_batches = list(fed)
    fed.clear()
    base = make_tree(tmp_path / "resumed", **EPOCHS)
    assert job(base, sigterm_at=8) == 0                      # the last batch of the last short epoch
    assert state_of(base)["curriculum_phase"] == "short"
    assert job(base) == 0
    assert fed == reference_batches
    assert_same_training(base, reference_base)


def test_short_length_without_a_bucket_fails_at_the_gate(tmp_path, job):
    base = make_tree(tmp_path, **dict(FRACTION, curriculum_short_length=2))
    assert job(base) == 2
    failure = read_failure(base)
    assert failure.count("\n") == 1
    assert failure.startswith("UserError: hyperparameter 'curriculum_short_length' = 2: no bucket holds only "
                              "pairs that short (the smallest bucket is 4 source x 3 target tokens; bucket_width = 4)")
