"""Checkpoint metrics: SageMaker-matchable stdout lines, CSV/JSON files and a PNG of the training curves."""

import csv
import io
import json
import logging
import os
from typing import List

from ..constants import CURVES_PNG_FILE, METRICS_CSV_FILE, METRICS_JSON_FILE
from ..atomic_write import write_bytes, write_text

logger = logging.getLogger(__name__)

# Published for SageMaker MetricDefinitions (name -> regex with one capture group).
METRIC_REGEXES = {
    "validation:bleu": r"#quality_metric: host=\S+, epoch=\d+, batch=\d+ validation bleu <score>=([0-9.eE+-]+)",
    "validation:perplexity": r"#quality_metric: host=\S+, epoch=\d+, batch=\d+ validation perplexity "
                             r"<score>=([0-9.eE+-]+)",
    "validation:accuracy": r"#quality_metric: host=\S+, epoch=\d+, batch=\d+ validation accuracy "
                           r"<score>=([0-9.eE+-]+)",
    "train:perplexity": r"#quality_metric: host=\S+, epoch=\d+, batch=\d+ train perplexity <score>=([0-9.eE+-]+)",
}

_LINE_METRICS = (("validation", "bleu"), ("validation", "perplexity"), ("validation", "accuracy"),
                 ("train", "perplexity"))


def metric_lines(host: str, record: dict) -> List[str]:
    """One `#quality_metric:` line per metric present in `record` (keys like `validation_bleu`).

    A BLEU score that carries a sacreBLEU signature (subword models: detokenised text, cased, 13a) gets it
    after the number, e.g. `... validation bleu <score>=31.2 (sacreBLEU nrefs:1|case:mixed|...|tok:13a|...)`;
    the published regexes still match. Word-level BLEU (tokenize='none') lines stay as they were.
    """
    lines = []
    for split, name in _LINE_METRICS:
        value = record.get(f"{split}_{name}")
        if value is not None:
            line = (f"#quality_metric: host={host}, epoch={record['epoch']}, batch={record['updates']} "
                    f"{split} {name} <score>={value:.6g}")
            signature = getattr(value, "signature", None)
            if signature:
                line += f" (sacreBLEU {signature})"
            lines.append(line)
    return lines


def _with_signatures(history: List[dict]) -> List[dict]:
    """Records with a `validation_bleu_signature` entry next to each BLEU score that carries one."""
    records = []
    for record in history:
        signature = getattr(record.get("validation_bleu"), "signature", None)
        records.append(dict(record, validation_bleu_signature=signature) if signature else record)
    return records


def write_metric_files(output_data_dir: str, history: List[dict]) -> None:
    """metrics.json, metrics.csv and training_curves.png under /opt/ml/output/data, each atomically."""
    os.makedirs(output_data_dir, exist_ok=True)
    history = _with_signatures(history)
    write_text(os.path.join(output_data_dir, METRICS_JSON_FILE), json.dumps(history, indent=1))
    columns = sorted({key for record in history for key in record})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    write_text(os.path.join(output_data_dir, METRICS_CSV_FILE), text.getvalue())
    try:
        write_bytes(os.path.join(output_data_dir, CURVES_PNG_FILE), _plot(history))
    except Exception as error:  # a plot is a convenience: never fail training for it
        logger.warning("could not draw the training curves: %s", error)


def _plot(history: List[dict]) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    names = [name for name in ("train_perplexity", "validation_perplexity", "validation_accuracy",
                               "validation_bleu") if any(name in r for r in history)]
    figure, axes = pyplot.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for axis, name in zip(axes[0], names):
        points = [(r["updates"], r[name]) for r in history if r.get(name) is not None]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        axis.set_title(name.replace("_", " "))
        axis.set_xlabel("updates")
        if name.endswith("perplexity"):
            axis.set_yscale("log")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    pyplot.close(figure)
    return buffer.getvalue()
