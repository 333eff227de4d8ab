"""The model directory (/opt/ml/model): which files it holds, and the one module that writes, reads and loads it.

A trained model directory holds, every file written atomically (see seq2seq.atomic_write):

    params.best        the parameters (MXNet Gluon `save_parameters` format)
    vocab.src.json     source vocabulary
    vocab.trg.json     target vocabulary
    version            the package version that wrote it (plain text)
    config.json        the architecture, decoding defaults, hyperparameters; written last, so its presence
                       means the files above are complete
    metrics.json       the best checkpoint's metrics (written by the training job after the model), and with
                       average_checkpoints those of the exported average (`averaged_checkpoints`)
    subword.src.model, subword.trg.model
                       SentencePiece models of a raw-text model (absent for word-level models)
    shortlist.npz      the decoding shortlist (seq2seq.inference.shortlist; absent: the whole vocabulary is
                       scored, as for models written before it existed)
"""

import contextlib
import io
import json
import os
from typing import Optional, Tuple

import mxnet as mx
import numpy as np

from . import __version__
from .atomic_write import write_bytes, write_json, write_with
from .constants import (MODEL_CONFIG_FILE, MODEL_METRICS_FILE, MODEL_PARAMS_FILE, MODEL_SHORTLIST_FILE,
                        MODEL_VERSION_FILE, SUBWORD_FILES, SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE, VOCAB_SOURCE_FILE,
                        VOCAB_TARGET_FILE)
from .data.subword import SubwordModels
from .data.vocab import Vocabulary
from .errors import UserError
from .inference.shortlist import Shortlist
from .model.config import ModelConfig
from .model.seq2seq_model import Seq2SeqModel

REQUIRED_FILES = (MODEL_PARAMS_FILE, VOCAB_SOURCE_FILE, VOCAB_TARGET_FILE, MODEL_VERSION_FILE, MODEL_CONFIG_FILE)
OPTIONAL_FILES = (MODEL_METRICS_FILE, MODEL_SHORTLIST_FILE, *SUBWORD_FILES)
MODEL_FILES = REQUIRED_FILES + OPTIONAL_FILES


def save_parameters_atomically(model: Seq2SeqModel, path: str) -> None:
    """Gluon `save_parameters` of `model` into `path`, atomically (the parameters file of write_model_dir)."""
    write_with(path, model.save_parameters)


def write_model_dir(model_dir: str, model: Seq2SeqModel, source_vocab: Vocabulary, target_vocab: Vocabulary,
                    extra_config: dict = None, subword: Optional[SubwordModels] = None,
                    shortlist: Optional[Shortlist] = None) -> None:
    """Write everything serving needs. Each file is written atomically; config.json is written last.

    `extra_config`: entries added to config.json (decoding defaults, hyperparameters).
    `subword`: the SentencePiece models (subword.src.model, subword.trg.model) that make the model take and
    give raw text; without them, subword files of an earlier model in the directory are removed.
    `shortlist`: the decoding shortlist's table; without one, an earlier model's table is removed.
    An OSError (full disk, no permission) propagates; files already in place stay as they were.
    """
    os.makedirs(model_dir, exist_ok=True)
    save_parameters_atomically(model, os.path.join(model_dir, MODEL_PARAMS_FILE))
    source_vocab.save(os.path.join(model_dir, VOCAB_SOURCE_FILE))
    target_vocab.save(os.path.join(model_dir, VOCAB_TARGET_FILE))
    if subword is not None:
        subword.save(model_dir)
    else:
        for name in SUBWORD_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(model_dir, name))
    write_shortlist(model_dir, shortlist)
    write_bytes(os.path.join(model_dir, MODEL_VERSION_FILE), __version__.encode())
    config = {"model": model.config.to_dict(), "version": __version__}
    if subword is not None:
        config["text"] = {"kind": "raw text, SentencePiece subwords", "source_model": SUBWORD_SOURCE_FILE,
                          "target_model": SUBWORD_TARGET_FILE, "joint": subword.joint}
    config.update(extra_config or {})
    write_json(os.path.join(model_dir, MODEL_CONFIG_FILE), config)


def write_model_metrics(model_dir: str, metrics: dict) -> None:
    """Write metrics.json (indented, sorted keys) into the model directory, atomically."""
    write_json(os.path.join(model_dir, MODEL_METRICS_FILE), metrics)


def read_model_config(model_dir: str) -> Tuple[ModelConfig, dict]:
    """(ModelConfig, the whole config.json dict); UserError naming the file if it is missing or unreadable."""
    path = os.path.join(model_dir, MODEL_CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as stream:
            config = json.load(stream)
        return ModelConfig.from_dict(config["model"]), config
    except FileNotFoundError:
        raise UserError(f"{path}: no model config; is {model_dir} a trained model directory?") from None
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path}: unreadable model config ({error})") from None


def load_model(model_dir: str, ctx=None) -> Tuple[Seq2SeqModel, Vocabulary, Vocabulary, dict]:
    """Load (model, source vocab, target vocab, config dict) from a model directory, hybridized, on `ctx`
    (default: the CPU). UserError when config.json, a vocabulary or params.best is missing, or config.json or
    a vocabulary is unreadable."""
    ctx = ctx or mx.cpu()
    model_config, config = read_model_config(model_dir)
    source_vocab = Vocabulary.load(os.path.join(model_dir, VOCAB_SOURCE_FILE))
    target_vocab = Vocabulary.load(os.path.join(model_dir, VOCAB_TARGET_FILE))
    model = Seq2SeqModel(model_config)
    params_path = os.path.join(model_dir, MODEL_PARAMS_FILE)
    if not os.path.exists(params_path):
        raise UserError(f"{params_path}: model parameters are missing")
    model.load_parameters(params_path, ctx=ctx)
    model.hybridize()
    return model, source_vocab, target_vocab, config


def write_shortlist(model_dir: str, shortlist: Optional[Shortlist]) -> None:
    """Write the decoding shortlist's table (shortlist.npz) atomically; None removes an existing one."""
    path = os.path.join(model_dir, MODEL_SHORTLIST_FILE)
    if shortlist is None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    buffer = io.BytesIO()
    np.savez(buffer, translations=shortlist.translations, by_frequency=shortlist.by_frequency, k=shortlist.k,
             frequent=shortlist.frequent)
    write_bytes(path, buffer.getvalue())


def load_shortlist(model_dir: str, source_vocab_size: int, target_vocab_size: int) -> Optional[Shortlist]:
    """The model's decoding shortlist, or None when the directory has none. UserError when the file is
    unreadable or does not fit the vocabularies."""
    path = os.path.join(model_dir, MODEL_SHORTLIST_FILE)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            shortlist = Shortlist(stored["translations"].astype(np.int32), stored["by_frequency"].astype(np.int32),
                                  int(stored["k"]), int(stored["frequent"]))
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"{path}: unreadable shortlist ({error}); remove it to score the whole vocabulary") from None
    translations, by_frequency = shortlist.translations, shortlist.by_frequency
    if translations.ndim != 2 or translations.shape[0] != source_vocab_size \
            or by_frequency.shape != (target_vocab_size,) \
            or (translations.size and (translations.min() < 0 or translations.max() >= target_vocab_size)):
        raise UserError(f"{path}: the shortlist does not fit the vocabularies ({source_vocab_size} source, "
                        f"{target_vocab_size} target ids); remove it to score the whole vocabulary")
    return shortlist
