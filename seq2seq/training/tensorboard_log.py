"""TensorBoard event files of a training job: curves, validation samples and an attention heatmap.

Written by host 0 only, with `tensorboard=true` (the default), under the `LocalPath` of
/opt/ml/input/config/tensorboardoutputconfig.json when SageMaker wrote one, else /opt/ml/output/tensorboard
(`SageMakerPaths.tensorboard_dir`). With `tensorboard=false`, or on the other hosts, no writer exists and
nothing here runs. The step of every event is the update number.

Tags:
    train/loss                       mean token cross-entropy (nats) of the updates since the previous progress
                                     line (or checkpoint): the sums the progress log line synchronizes anyway
    train/perplexity                 exp(train/loss)
    train/learning_rate              the learning rate of the update
    train/gradient_norm              L2 norm of the mean gradient of the update at that step, in true units,
                                     before clipping (precision.GradientStep.global_norm)
    train/target_tokens_per_second   target tokens per second of wall-clock time since the previous line
    validation/perplexity, validation/accuracy, validation/bleu (and validation/shortlist_coverage with a
                                     shortlist): at every checkpoint, the values of output/data/metrics.json
    validation/samples/text_summary  (text) a Markdown table of the first SAMPLE_SENTENCES validation sentences:
                                     source, reference, hypothesis (beam search with the job's decoding settings)
    validation/attention (image)     the attention matrix of the first sample as a heatmap, target pieces
                                     (rows) over source pieces (columns)

The events of the progress lines every `log_frequency_num_batches` cost no host synchronisation beyond the line's
own, except the gradient norm when it was not measured for clipping (one more, at that update only). At each
checkpoint the samples are decoded again with attention (a few sentences, one batch).
"""

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from typing import List, Optional

import numpy as np

from ..data.dataset import ParallelData
from ..data.subword import SubwordModels
from ..data.vocab import Vocabulary
from ..errors import StorageError
from ..inference.translator import DecodeOptions, Translator

logger = logging.getLogger(__name__)

SAMPLE_SENTENCES = 3
FLUSH_SECONDS = 30
CHECKPOINT_SCALARS = ("perplexity", "accuracy", "bleu", "shortlist_coverage")
MAX_HEATMAP_INCHES = 16.0


def event_directory(enabled: bool, is_master: bool, paths) -> Optional[str]:
    """Where this host writes event files: `paths.tensorboard_dir` (a SageMakerPaths) on host 0 with
    `tensorboard=true`, None otherwise (no writer). The configuration file is read only when it is needed."""
    if not (enabled and is_master):
        return None
    return paths.tensorboard_dir


@dataclass(frozen=True)
class ProgressScalars:
    """What a progress line measured: `loss_sum` (nats) over `num_tokens` target tokens since the previous line,
    the update's `learning_rate` and global `gradient_norm`, and `seconds` of wall-clock time since that line."""

    loss_sum: float
    num_tokens: int
    learning_rate: float
    gradient_norm: float
    seconds: float


@dataclass(frozen=True)
class Sample:
    """One validation sentence and its translation. `attention` is `(len(target_tokens), len(source_tokens))`:
    row t is the attention of output token t over the source pieces."""

    source: str
    reference: str
    hypothesis: str
    source_tokens: List[str]
    target_tokens: List[str]
    attention: np.ndarray


class ValidationSamples:
    """Decodes the first `count` validation sentences with attention (the whole vocabulary, as BLEU does)."""

    def __init__(self, data: ParallelData, source_vocab: Vocabulary, target_vocab: Vocabulary, context,
                 subword: Optional[SubwordModels] = None, count: int = SAMPLE_SENTENCES):
        self.data = data
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.context = context
        self.subword = subword
        self.indices = list(range(min(count, len(data))))

    def decode(self, model, options: DecodeOptions) -> List[Sample]:
        """The samples translated by `model` with `options` (attention switched on)."""
        if not self.indices:
            return []
        translator = Translator(model, self.source_vocab, self.target_vocab, context=self.context,
                                subword=self.subword)
        sources = [list(self.data.sources[i]) for i in self.indices]
        translations = translator.translate_ids(sources, replace(options, attention_matrix=True))
        return [self._sample(source, list(self.data.targets[i]), translation)
                for i, source, translation in zip(self.indices, sources, translations)]

    def _sample(self, source_ids: List[int], target_ids: List[int], translation) -> Sample:
        if self.subword is None:
            texts = (" ".join(self.source_vocab.decode(source_ids)), " ".join(self.target_vocab.decode(target_ids)),
                     " ".join(translation.target_tokens))
        else:
            texts = (self.subword.source.decode(source_ids), self.subword.target.decode(target_ids),
                     self.subword.target.decode(translation.target_ids))
        attention = np.asarray(translation.attention, dtype=np.float32)
        source_tokens = self.source_vocab.decode(source_ids[:attention.shape[1]], strip_special=False)
        target_tokens = self.target_vocab.decode(translation.target_ids, strip_special=False)
        return Sample(*texts, source_tokens, target_tokens, attention[:len(target_tokens)])


class TensorBoardLog:
    """The event writer of one job (see the module docstring). `open` before the first event, `close` at the end.

    Args:
        log_dir: the event directory (created by `open`).
        samples: the validation sentences shown at each checkpoint.
    """

    def __init__(self, log_dir: str, samples: ValidationSamples):
        self.log_dir = log_dir
        self.samples = samples
        self._writer = None

    def open(self, resume_step: int) -> None:
        """Start a new event file. A job resumed at update `resume_step` > 0 hides from TensorBoard the events of
        a previous run after that update (they are written again), so that no curve has two values at a step."""
        from tensorboardX import SummaryWriter   # imported only when event files are written
        try:
            os.makedirs(self.log_dir, exist_ok=True)
        except OSError as error:
            raise StorageError(f"cannot create the TensorBoard directory {self.log_dir}: {error.strerror or error}; "
                               "set the hyperparameter tensorboard=false to write no event files") from error
        # The file name holds the second it was created; the suffix keeps a restart in the same second from
        # overwriting the previous file, and sorts after it (TensorBoard reads a directory's files in name order).
        self._writer = SummaryWriter(self.log_dir, purge_step=resume_step + 1 if resume_step > 0 else None,
                                     flush_secs=FLUSH_SECONDS, filename_suffix=f".{time.time_ns()}")
        logger.info("TensorBoard event files go to %s", self.log_dir)

    def progress(self, step: int, scalars: ProgressScalars) -> None:
        """The scalars of a progress line (train/*) at update `step`."""
        loss = scalars.loss_sum / max(1, scalars.num_tokens)
        values = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "learning_rate": scalars.learning_rate,
                  "gradient_norm": scalars.gradient_norm,
                  "target_tokens_per_second": scalars.num_tokens / max(scalars.seconds, 1e-9)}
        for name, value in values.items():
            self._writer.add_scalar(f"train/{name}", float(value), step)

    def checkpoint(self, record: dict, model, options: DecodeOptions) -> None:
        """A checkpoint's validation scalars (from its metrics.json `record`), the samples decoded by `model` with
        `options`, and the first sample's attention heatmap; then everything is flushed to disk."""
        step = record["updates"]
        for name in CHECKPOINT_SCALARS:
            value = record.get(f"validation_{name}")
            if value is not None:
                self._writer.add_scalar(f"validation/{name}", float(value), step)
        samples = self.samples.decode(model, options)
        if samples:
            self._writer.add_text("validation/samples", samples_markdown(samples), step)
            self._writer.add_image("validation/attention", attention_heatmap(samples[0], step), step,
                                   dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (idempotent)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _markdown_cell(text: str) -> str:
    """`text` as the literal content of a Markdown table cell (TensorBoard renders Markdown, drops raw HTML)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for character in "\\`*_[]|#":
        text = text.replace(character, "\\" + character)
    return text.replace("\n", " ") or " "


def samples_markdown(samples: List[Sample]) -> str:
    """A Markdown table: one row per sample with its source, reference and hypothesis."""
    rows = ["| # | source | reference | hypothesis |", "|---|---|---|---|"]
    rows += [f"| {i} | {_markdown_cell(s.source)} | {_markdown_cell(s.reference)} | {_markdown_cell(s.hypothesis)} |"
             for i, s in enumerate(samples)]
    return "\n".join(rows)


def attention_heatmap(sample: Sample, step: int) -> np.ndarray:
    """The attention matrix of `sample` drawn with its pieces on the axes: `(height, width, 3)` uint8 RGB."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows, columns = sample.attention.shape
    width = min(MAX_HEATMAP_INCHES, 2.0 + 0.35 * max(columns, 1))
    height = min(MAX_HEATMAP_INCHES, 1.6 + 0.3 * max(rows, 1))
    figure, axis = pyplot.subplots(figsize=(width, height))
    try:
        image = axis.imshow(sample.attention if sample.attention.size else np.zeros((1, 1)), cmap="viridis",
                            vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        axis.set_xticks(range(columns))
        axis.set_xticklabels(sample.source_tokens, rotation=90, fontsize=8)
        axis.set_yticks(range(rows))
        axis.set_yticklabels(sample.target_tokens, fontsize=8)
        axis.set_xlabel("source")
        axis.set_ylabel("translation")
        axis.set_title(f"attention at update {step}", fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.04)
        figure.tight_layout()
        figure.canvas.draw()
        return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    finally:
        pyplot.close(figure)
