"""Reading pairs into memory, padded batches, and the bucketed, seeded, resumable, shardable iterator."""

import mxnet as mx
import numpy as np
import pytest

from seq2seq.constants import BOS_ID, EOS_ID, PAD_ID
from seq2seq.data.batch import Batch
from seq2seq.data.batch_iterator import BucketBatchIterator, IteratorPosition, make_batch
from seq2seq.data.bucketing import define_parallel_buckets
from seq2seq.data.dataset import ParallelData, read_parallel_data
from seq2seq.errors import UserError

NUM_PAIRS = 203


def numbered_data(num_pairs=NUM_PAIRS, seed=0) -> ParallelData:
    """Pairs whose first source token is 10 + the pair index, so every batch row can be traced to its pair."""
    rng = np.random.RandomState(seed)
    sources, targets = [], []
    for index in range(num_pairs):
        length = rng.randint(1, 15)
        sources.append(np.array([10 + index] + list(rng.randint(4, 9, length - 1)), dtype=np.int32))
        targets.append(rng.randint(4, 9, rng.randint(1, 15)).astype(np.int32))
    return ParallelData(sources, targets)


def pair_indices(batch: Batch) -> list:
    return [int(v) - 10 for v in batch.source[:, 0]]


def make_iterator(data=None, seed=5, batch_size=8, **kwargs) -> BucketBatchIterator:
    buckets = define_parallel_buckets(15, 16, 4, 1.0)
    return BucketBatchIterator(data or numbered_data(), buckets, batch_size, seed, **kwargs)


def epoch_indices(iterator, epoch, start=0):
    return [pair_indices(b) for b in iterator.epoch(IteratorPosition(epoch, start))]


# ----- batches -----

def test_make_batch_pads_and_adds_bos_and_eos():
    batch = make_batch([np.array([5, 6, 7]), np.array([8])], [np.array([9, 10]), np.array([11, 12, 13])], (4, 5))
    np.testing.assert_array_equal(batch.source, [[5, 6, 7, PAD_ID], [8, PAD_ID, PAD_ID, PAD_ID]])
    np.testing.assert_array_equal(batch.source_length, [3, 1])
    np.testing.assert_array_equal(batch.target_input, [[BOS_ID, 9, 10, PAD_ID, PAD_ID], [BOS_ID, 11, 12, 13, PAD_ID]])
    np.testing.assert_array_equal(batch.labels, [[9, 10, EOS_ID, PAD_ID, PAD_ID], [11, 12, 13, EOS_ID, PAD_ID]])
    assert batch.num_target_tokens == 3 + 4
    assert batch.size == 2


@pytest.mark.parametrize("size,num_shards", [(8, 2), (7, 2), (9, 4), (3, 3), (5, 1)])
def test_batch_shards_split_rows_without_loss(size, num_shards):
    data = numbered_data(size)
    batch = make_batch(data.sources, data.targets, (15, 16))
    shards = batch.shards(num_shards)
    assert len(shards) == num_shards
    sizes = [s.size for s in shards]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
    for name in ("source", "source_length", "target_input", "labels"):
        np.testing.assert_array_equal(np.concatenate([getattr(s, name) for s in shards]), getattr(batch, name))
    assert sum(s.num_target_tokens for s in shards) == batch.num_target_tokens


def test_split_and_load_puts_each_shard_on_its_context():
    data = numbered_data(5)
    batch = make_batch(data.sources, data.targets, (15, 16))
    contexts = [mx.cpu(0), mx.cpu(1)]
    loaded = batch.split_and_load(contexts)
    assert [part.source.context for part in loaded] == contexts
    np.testing.assert_array_equal(np.concatenate([part.labels.asnumpy() for part in loaded]), batch.labels)
    assert all(part.source.dtype == np.float32 for part in loaded)


# ----- the iterator -----

def test_every_pair_once_per_epoch_in_a_fitting_bucket():
    iterator = make_iterator()
    data = iterator.data
    seen = []
    for batch in iterator.epoch(IteratorPosition(0, 0)):
        indices = pair_indices(batch)
        seen.extend(indices)
        assert 1 <= batch.size <= 8
        for row, index in enumerate(indices):
            n, m = len(data.sources[index]), len(data.targets[index])
            assert batch.source_length[row] == n
            np.testing.assert_array_equal(batch.source[row, :n], data.sources[index])
            assert np.all(batch.source[row, n:] == PAD_ID)
            np.testing.assert_array_equal(batch.labels[row, :m + 1], list(data.targets[index]) + [EOS_ID])
        assert (batch.source.shape[1], batch.labels.shape[1]) in iterator.buckets
    assert sorted(seen) == list(range(NUM_PAIRS))
    assert iterator.num_batches() == len(epoch_indices(iterator, 0))


def test_order_is_a_function_of_seed_and_epoch():
    first, again = make_iterator(seed=5), make_iterator(seed=5)
    assert epoch_indices(first, 0) == epoch_indices(again, 0)
    assert epoch_indices(first, 3) == epoch_indices(again, 3)
    assert epoch_indices(first, 0) != epoch_indices(first, 1)
    assert epoch_indices(first, 0) != epoch_indices(make_iterator(seed=6), 0)
    # Reading epoch 3 first does not change epoch 0: there is no hidden generator state.
    fresh = make_iterator(seed=5)
    epoch_indices(fresh, 3)
    assert epoch_indices(fresh, 0) == epoch_indices(first, 0)


def test_without_shuffle_the_order_is_fixed_by_bucket():
    iterator = make_iterator(shuffle=False)
    batches = epoch_indices(iterator, 0)
    assert batches == epoch_indices(iterator, 7)
    assert sum(batches, []) == [i for members in iterator.bucket_members for i in members]


@pytest.mark.parametrize("start", [0, 1, 7, 25])
def test_resume_gives_exactly_the_remaining_batches(start):
    iterator = make_iterator()
    full = epoch_indices(iterator, 2)
    assert 25 < len(full)
    assert epoch_indices(make_iterator(), 2, start) == full[start:]
    assert epoch_indices(iterator, 2, len(full)) == []


@pytest.mark.parametrize("num_workers", [2, 3, 4])
def test_workers_get_disjoint_batches_and_equal_counts(num_workers):
    single = make_iterator()
    global_batches = {tuple(b) for b in epoch_indices(single, 1)}
    per_worker = [epoch_indices(make_iterator(rank=rank, num_workers=num_workers), 1) for rank in range(num_workers)]
    counts = {len(batches) for batches in per_worker}
    assert len(counts) == 1
    assert counts.pop() == len(global_batches) // num_workers
    assert {make_iterator(rank=r, num_workers=num_workers).num_batches(e) for r in range(num_workers)
            for e in (0, 1, 5)} == {len(global_batches) // num_workers}
    seen_pairs = [i for batches in per_worker for batch in batches for i in batch]
    assert len(seen_pairs) == len(set(seen_pairs)), "a pair went to two workers"
    assert {tuple(b) for batches in per_worker for b in batches} <= global_batches


def test_min_batch_size_drops_small_batches():
    iterator = make_iterator(min_batch_size=3)
    sizes = [len(b) for b in epoch_indices(iterator, 0)]
    assert min(sizes) >= 3
    everything = sum((len(m) for m in iterator.bucket_members))
    dropped = everything - sum(sizes)
    assert dropped == sum(len(m) % 8 for m in iterator.bucket_members if 0 < len(m) % 8 < 3)


def test_one_bucket_when_bucketing_is_off():
    iterator = BucketBatchIterator(numbered_data(), [(15, 16)], 16, seed=1)
    assert all(b.source.shape == (b.size, 15) and b.labels.shape == (b.size, 16)
               for b in iterator.epoch(IteratorPosition()))
    assert iterator.bucket_table() == f"15x16:{NUM_PAIRS}"


def test_pairs_longer_than_every_bucket_are_left_out():
    data = ParallelData([np.array([10, 4]), np.arange(4, 40)], [np.array([5]), np.array([5])])
    iterator = BucketBatchIterator(data, [(10, 10)], 4, seed=1)
    assert epoch_indices(iterator, 0) == [[0]]


# ----- reading pairs -----

def test_read_parallel_data_truncates_skips_and_counts():
    pairs = [(np.array([4, 5, 6, 7]), np.array([4, 5])), (np.array([], dtype=np.int32), np.array([4])),
             (np.array([4]), np.array([5, 6, 7, 8, 9]))]
    data = read_parallel_data([("train.rec", iter(pairs))], 10, 10, max_source_len=3, max_target_len=4)
    assert len(data) == 2
    assert data.num_skipped_empty == 1 and data.num_truncated == 2
    np.testing.assert_array_equal(data.sources[0], [4, 5, 6])
    np.testing.assert_array_equal(data.targets[1], [5, 6, 7, 8])
    np.testing.assert_array_equal(data.source_lengths, [3, 1])


@pytest.mark.parametrize("side,pair", [("source", ([4, 12], [4])), ("target", ([4], [4, 9, 10]))])
def test_read_parallel_data_names_file_record_and_side_of_a_bad_id(side, pair):
    pairs = [(np.array([4]), np.array([5])), (np.array(pair[0]), np.array(pair[1]))]
    with pytest.raises(UserError) as error:
        read_parallel_data([("channel 'train' /data/train.rec", iter(pairs))], 12, 10, 50, 50)
    message = str(error.value)
    assert "/data/train.rec" in message and "record 1" in message and f"{side} token id" in message


@pytest.mark.parametrize("input_feeding", [False, True])
def test_loaded_batch_gathers_the_logits_of_non_padding_positions(input_feeding):
    from seq2seq.model.config import ModelConfig
    from seq2seq.model.seq2seq_model import Seq2SeqModel
    data = numbered_data(6)
    data = ParallelData([np.minimum(s, 11) for s in data.sources], [np.minimum(t, 11) for t in data.targets])
    batch = make_batch(data.sources, data.targets, (15, 16))
    config = ModelConfig(source_vocab_size=12, target_vocab_size=12, num_embed_source=6, num_embed_target=6,
                         rnn_num_hidden=8, rnn_attention_num_hidden=4, input_feeding=input_feeding)
    model = Seq2SeqModel(config)
    model.initialize_parameters(mx.init.Xavier(), mx.cpu())
    model.hybridize()
    loaded = batch.load(mx.cpu())
    mask = batch.labels != PAD_ID
    np.testing.assert_array_equal(loaded.valid_labels.asnumpy(), batch.labels[mask])
    assert loaded.valid_positions.shape == (batch.num_target_tokens,)
    full = model(loaded.source, loaded.source_length, loaded.target_input).asnumpy()
    np.testing.assert_allclose(loaded.valid_logits(model).asnumpy(), full[mask], rtol=1e-5, atol=1e-5)
