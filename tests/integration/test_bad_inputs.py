"""Every row of docs/bad_inputs.md is what the code produces: each case runs again and is compared with its row."""
import json
import os

import mxnet as mx
import numpy as np
import pytest

from tests import bad_inputs
from tests.sagemaker_tree import read_failure

pytestmark = pytest.mark.slow
DOCUMENTED = bad_inputs.documented()


def test_the_table_has_one_row_per_case_and_at_least_30():
    assert list(DOCUMENTED) == [case_id for case_id, _, _, _ in bad_inputs.CASES]
    assert len(DOCUMENTED) >= 30
    areas = {area for _, area, _, _ in bad_inputs.CASES}
    assert {"data", "vocabulary", "hyperparameters", "resource config", "checkpoints", "disk", "HTTP"} <= areas


@pytest.mark.parametrize("case_id, function", [(c[0], c[3]) for c in bad_inputs.CASES],
                         ids=[c[0] for c in bad_inputs.CASES])
def test_documented_outcome(case_id, function, tmp_path):
    observed = bad_inputs.observe(function, str(tmp_path))
    assert observed == DOCUMENTED[case_id]
    assert "Traceback" not in observed


def params_of(path):
    return {k: v.asnumpy() for k, v in mx.nd.load(path).items()}


@pytest.mark.parametrize("case_id", ["disk-full-checkpoint", "disk-no-permission-state"])
def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint_and_model(case_id, tmp_path):
    base = str(tmp_path)
    function = dict((c[0], c[3]) for c in bad_inputs.CASES)[case_id]
    bad_inputs.trained_tree(base)
    state_path = os.path.join(base, "checkpoints", "training_state", "state.json")
    with open(state_path) as stream:
        before_state = json.load(stream)
    before_model = params_of(os.path.join(base, "model", "params.best"))
    assert function(base).startswith("exit 1: StorageError")
    assert not os.path.exists(os.path.join(base, "checkpoints", "training_state.new"))
    with open(state_path) as stream:
        assert json.load(stream) == before_state
    after_model = params_of(os.path.join(base, "model", "params.best"))
    for name, value in before_model.items():
        np.testing.assert_array_equal(after_model[name], value)
    # the kept checkpoint is complete: the same job, with the disk fixed, resumes from it and finishes
    assert bad_inputs.run_job(base).startswith("exit 0")
    assert read_failure(base) is None
    with open(state_path) as stream:
        assert json.load(stream)["num_updates"] == 4
