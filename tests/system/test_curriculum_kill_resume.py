"""SIGKILL of a job with the length curriculum after its switch to all buckets: the restart resumes from the
checkpoint of the first phase, switches again at the same update and ends like an uninterrupted run."""

import pytest

from tests.integration.test_curriculum_job import FRACTION
from tests.integration.test_resume import assert_same_training, make_tree, state_of
from tests.system.test_kill_resume import killed_run, resume

pytestmark = pytest.mark.system


def test_sigkill_after_the_switch_resumes_from_the_first_phase_exactly(tmp_path):
    reference = make_tree(tmp_path / "reference", **FRACTION)
    resume(reference)
    base = make_tree(tmp_path / "killed", **FRACTION)
    killed_run(base, "update", 31)       # switch after update 25; the last complete checkpoint is update 20
    assert state_of(base)["curriculum_phase"] == "short" and state_of(base)["num_updates"] == 20
    output = resume(base)
    assert "at update 20" in output and "length curriculum: all buckets from update 25 (epoch 7)" in output
    assert_same_training(base, reference)
