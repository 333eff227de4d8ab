"""Two hosts with different amounts of short training pairs run the length curriculum: they agree on the batches
of a short epoch, so both switch to all buckets at the same update and end with identical parameters."""

import os

import numpy as np
import pytest

from seq2seq.data.recordio_codec import RecordWriter
from seq2seq.data.vocab import Vocabulary
from tests.integration.test_multihost import HOSTS, final_checkpoint, make_hosts, read, run_hosts
from tests.sagemaker_tree import copy_task_pairs

pytestmark = pytest.mark.slow


def test_hosts_with_different_short_data_switch_at_the_same_update(tmp_path):
    bases = make_hosts(tmp_path, curriculum="length", curriculum_short_length=4, curriculum_num_epochs=2,
                       max_num_batches=12, checkpoint_frequency_num_batches=12, bleu_sample_size=0)
    # algo-2 reads fewer pairs (as with ShardedByS3Key): 2 short batches per worker where algo-1 has 3.
    data = os.path.join(bases["algo-2"], "input", "data")
    source_vocab = Vocabulary.load(os.path.join(data, "vocab", "vocab.src.json"))
    target_vocab = Vocabulary.load(os.path.join(data, "vocab", "vocab.trg.json"))
    with RecordWriter(os.path.join(data, "train", "train.rec")) as writer:
        for source, target in copy_task_pairs(400, seed=1)[:250]:
            writer.write(source_vocab.encode(source), target_vocab.encode(target))
    logs = run_hosts(tmp_path, bases)
    for host in HOSTS:
        log = read(logs[host])
        assert "length curriculum: 2 batches per short epoch per worker; all buckets from epoch 2" in log, host
        assert "length curriculum: all buckets from update 4 (epoch 2)" in log, host
    first_update, first = final_checkpoint(bases["algo-1"])
    second_update, second = final_checkpoint(bases["algo-2"])
    assert first_update == second_update == 12
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
