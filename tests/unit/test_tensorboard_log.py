"""TensorBoard event files: where they go (configuration file, host 0 only), what a progress line and a checkpoint
write (read back with TensorBoard's own reader), the sample table and the attention heatmap."""

import io
import json
import math
import os

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2seq.data.dataset import ParallelData
from seq2seq.data.vocab import build_vocabulary
from seq2seq.errors import UserError
from seq2seq.inference.translator import DecodeOptions, Translator
from seq2seq.opt_ml import SageMakerPaths, read_resource_config
from seq2seq.training.tensorboard_log import (ProgressScalars, Sample, TensorBoardLog, ValidationSamples,
                                              attention_heatmap, event_directory, samples_markdown)
from tests.untrained_model import save_untrained_model


def read_events(directory: str) -> EventAccumulator:
    accumulator = EventAccumulator(directory, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def write_config(paths: SageMakerPaths, name: str, content) -> str:
    os.makedirs(paths.input_config_dir, exist_ok=True)
    path = os.path.join(paths.input_config_dir, name)
    with open(path, "w") as stream:
        stream.write(content if isinstance(content, str) else json.dumps(content))
    return path


# ----- where -----

def test_without_the_configuration_file_events_go_to_output_tensorboard(tmp_path):
    paths = SageMakerPaths(str(tmp_path))
    assert paths.tensorboard_dir == os.path.join(str(tmp_path), "output", "tensorboard")


def test_the_configuration_files_local_path_is_used_relocated_under_the_base_dir(tmp_path):
    paths = SageMakerPaths(str(tmp_path / "ml"))
    write_config(paths, "tensorboardoutputconfig.json", {"LocalPath": "/opt/ml/custom/tb", "S3OutputPath": "s3://b/t"})
    assert paths.tensorboard_dir == os.path.join(str(tmp_path / "ml"), "custom", "tb")
    write_config(paths, "tensorboardoutputconfig.json", {"LocalPath": str(tmp_path / "elsewhere")})
    assert paths.tensorboard_dir == str(tmp_path / "elsewhere")
    write_config(paths, "tensorboardoutputconfig.json", {"S3OutputPath": "s3://b/t"})
    assert paths.tensorboard_dir == os.path.join(str(tmp_path / "ml"), "output", "tensorboard")


@pytest.mark.parametrize("content, expected", [
    ('{"LocalPath": "relative/tb"}', "LocalPath must be an absolute directory path"),
    ('["/opt/ml/tb"]', "must be a JSON object with LocalPath"),
    ('{"LocalPath": ', "is not valid JSON"),
])
def test_a_bad_configuration_file_is_a_user_error_naming_it(tmp_path, content, expected):
    paths = SageMakerPaths(str(tmp_path))
    path = write_config(paths, "tensorboardoutputconfig.json", content)
    with pytest.raises(UserError, match=expected) as caught:
        paths.tensorboard_dir
    assert str(caught.value).startswith(path + ":")


def test_only_host_0_with_tensorboard_on_gets_a_directory(tmp_path):
    paths = SageMakerPaths(str(tmp_path))
    write_config(paths, "tensorboardoutputconfig.json", {"LocalPath": "/opt/ml/tb"})
    hosts = {"hosts": ["algo-2", "algo-1"], "network_interface_name": "eth0"}
    decisions = {}
    for host in ("algo-1", "algo-2"):
        write_config(paths, "resourceconfig.json", dict(hosts, current_host=host))
        resource = read_resource_config(paths)
        decisions[host] = {enabled: event_directory(enabled, resource.is_master, paths) for enabled in (True, False)}
    assert decisions == {"algo-1": {True: os.path.join(str(tmp_path), "tb"), False: None},
                         "algo-2": {True: None, False: None}}


def test_the_configuration_file_is_not_read_when_no_events_are_written(tmp_path):
    paths = SageMakerPaths(str(tmp_path))
    write_config(paths, "tensorboardoutputconfig.json", "not json")
    assert event_directory(False, True, paths) is None
    assert event_directory(True, False, paths) is None
    with pytest.raises(UserError):
        event_directory(True, True, paths)


# ----- what -----

@pytest.fixture(scope="module")
def tiny_translator(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("model"))
    source_vocab = build_vocabulary([["ein", "hund", "läuft", "im", "park", "zwei", "kinder"]])
    target_vocab = build_vocabulary([["a", "dog", "runs", "in", "the", "park", "two", "children"]])
    save_untrained_model(model_dir, source_vocab, target_vocab, seed=3)
    return Translator.load(model_dir)


def validation_data(translator, pairs) -> ParallelData:
    data = ParallelData()
    for source, target in pairs:
        data.sources.append(np.array(translator.source_vocab.encode(source.split()), dtype=np.int32))
        data.targets.append(np.array(translator.target_vocab.encode(target.split()), dtype=np.int32))
    return data


def test_progress_and_checkpoint_events_read_back(tmp_path, tiny_translator):
    pairs = [("ein hund läuft", "a dog runs"), ("zwei kinder im park", "two children in the park"),
             ("im park", "in the park"), ("ein hund", "a dog")]
    samples = ValidationSamples(validation_data(tiny_translator, pairs), tiny_translator.source_vocab,
                                tiny_translator.target_vocab, tiny_translator.context, count=3)
    log = TensorBoardLog(str(tmp_path / "tb"), samples)
    log.open(0)
    log.progress(10, ProgressScalars(loss_sum=230.0, num_tokens=100, learning_rate=0.003, gradient_norm=1.5,
                                     seconds=0.5))
    record = {"updates": 20, "validation_perplexity": 7.25, "validation_accuracy": 0.375, "validation_bleu": 12.5}
    options = DecodeOptions(beam_size=2)
    log.checkpoint(record, tiny_translator.model, options)
    log.close()
    events = read_events(str(tmp_path / "tb"))
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert scalars == {
        "train/loss": [(10, pytest.approx(2.3))], "train/perplexity": [(10, pytest.approx(math.exp(2.3)))],
        "train/learning_rate": [(10, pytest.approx(0.003))], "train/gradient_norm": [(10, 1.5)],
        "train/target_tokens_per_second": [(10, 200.0)],
        "validation/perplexity": [(20, 7.25)], "validation/accuracy": [(20, 0.375)], "validation/bleu": [(20, 12.5)]}
    # The sample table holds the first three sentences and the translator's own translations of them.
    expected = tiny_translator.translate_text([s for s, _ in pairs[:3]], options)
    (text,) = events.Tensors("validation/samples/text_summary")
    rows = text.tensor_proto.string_val[0].decode("utf-8").splitlines()[2:]
    escaped = [translation.text.replace("<", "&lt;").replace(">", "&gt;") for translation in expected]  # <unk>
    assert rows == [f"| {i} | {source} | {target} | {hypothesis} |"
                    for i, ((source, target), hypothesis) in enumerate(zip(pairs, escaped))]
    (image,) = events.Images("validation/attention")
    picture = Image.open(io.BytesIO(image.encoded_image_string))
    assert image.step == 20 and picture.size == (image.width, image.height) and picture.mode == "RGB"


def test_samples_carry_the_attention_matrix_of_their_translation(tiny_translator):
    pairs = [("zwei kinder im park", "two children in the park")]
    samples = ValidationSamples(validation_data(tiny_translator, pairs), tiny_translator.source_vocab,
                                tiny_translator.target_vocab, tiny_translator.context)
    (sample,) = samples.decode(tiny_translator.model, DecodeOptions(beam_size=3))
    (translation,) = tiny_translator.translate_text([pairs[0][0]], DecodeOptions(beam_size=3, attention_matrix=True))
    assert sample.source_tokens == ["zwei", "kinder", "im", "park"]
    assert sample.target_tokens == translation.target_tokens and sample.hypothesis == translation.text
    np.testing.assert_allclose(sample.attention, translation.attention, rtol=1e-5)
    assert sample.attention.shape == (len(sample.target_tokens), 4)


def test_the_sample_table_shows_text_literally():
    sample = Sample("a|b <unk> *x*", "ref_1", "", [], [], np.zeros((0, 0)))
    table = samples_markdown([sample]).splitlines()
    assert table[:2] == ["| # | source | reference | hypothesis |", "|---|---|---|---|"]
    assert table[2] == "| 0 | a\\|b &lt;unk&gt; \\*x\\* | ref\\_1 |   |"


def test_the_heatmap_grows_with_the_sentence_and_shows_the_weights():
    def sample(rows, columns):
        attention = np.zeros((rows, columns), dtype=np.float32)
        attention[np.arange(rows), np.arange(rows) % columns] = 1.0
        return Sample("", "", "", [f"s{i}" for i in range(columns)], [f"t{i}" for i in range(rows)], attention)
    small, large = attention_heatmap(sample(2, 3), 5), attention_heatmap(sample(9, 12), 5)
    assert small.dtype == np.uint8 and small.ndim == 3 and small.shape[2] == 3
    assert large.shape[0] > small.shape[0] and large.shape[1] > small.shape[1]
    assert len(np.unique(small.reshape(-1, 3), axis=0)) > 10   # a drawn picture, not a blank canvas
    empty = attention_heatmap(Sample("", "", "", ["s0"], [], np.zeros((0, 1), dtype=np.float32)), 5)
    assert empty.shape[2] == 3
