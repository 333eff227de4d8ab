"""Bad-input cases: hyperparameters.json and resourceconfig.json."""
import json

from tests.bad_inputs.job import JOB_HP, config_path, data_path, job_case, overwrite, rewrite_json
from tests.sagemaker_tree import write_hyperparameters

# hyperparameters: one bad value each in an otherwise valid hyperparameters.json (id, what is wrong, the changes).
_HYPERPARAMETER_CASES = [
    ("hp-unknown-name", "a misspelt name (batch_szie)", {"batch_szie": 32}),
    ("hp-bad-choice", "rnn_attention_type=cosine", {"rnn_attention_type": "cosine"}),
    ("hp-zero-batch", "batch_size=0", {"batch_size": 0}),
    ("hp-not-a-number", "learning_rate=fast", {"learning_rate": "fast"}),
    ("hp-odd-hidden", "rnn_num_hidden=33 (odd: the encoder directions split it)", {"rnn_num_hidden": 33}),
    ("hp-weight-tying-sizes", "weight_tying=true with num_embed_target != rnn_num_hidden", {"weight_tying": "true"}),
    ("hp-bad-devices", "devices=tpu:0", {"devices": "tpu:0"}),
    ("hp-curriculum-no-short-bucket", "curriculum=length with curriculum_short_length=2, below every bucket",
     {"curriculum": "length", "curriculum_short_length": 2}),
]
for _case_id, _what, _changes in _HYPERPARAMETER_CASES:
    job_case(_case_id, "hyperparameters", _what)(
        lambda base, changes=_changes: write_hyperparameters(base, dict(JOB_HP, **changes)))


@job_case("hp-tying-separate-vocabularies", "hyperparameters",
          "weight_tying_type=src_trg with vocab.src.json and vocab.trg.json not one vocabulary")
def _(base):
    write_hyperparameters(base, dict(JOB_HP, weight_tying="true", weight_tying_type="src_trg"))
    rewrite_json(data_path(base, "vocab", "vocab.trg.json"),
                 lambda mapping: {token: (9 if index == 8 else 8 if index == 9 else index)
                                  for token, index in mapping.items()})


@job_case("hp-file-not-json", "hyperparameters", "hyperparameters.json is not JSON")
def _(base):
    overwrite(config_path(base, "hyperparameters.json"), "batch_size=64\n")


# resource config: resourceconfig.json replaced by one text each (id, what is wrong, the text).
_RESOURCE_CONFIG_CASES = [
    ("resource-not-json", "resourceconfig.json is not JSON", "{hosts: [algo-1]"),
    ("resource-host-not-listed", "current_host is not among hosts",
     json.dumps({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]})),
    ("resource-no-hosts", "hosts is an empty list", json.dumps({"current_host": "algo-1", "hosts": []})),
]
for _case_id, _what, _text in _RESOURCE_CONFIG_CASES:
    job_case(_case_id, "resource config", _what)(
        lambda base, text=_text: overwrite(config_path(base, "resourceconfig.json"), text))
