"""Reading and writing a model directory: params.best, config.json, vocab.src.json, vocab.trg.json
(and subword.src.model, subword.trg.model for raw-text models)."""

import contextlib
import json
import os
from typing import Optional, Tuple

import mxnet as mx

from .. import __version__
from ..constants import MODEL_CONFIG_FILE, MODEL_PARAMS_FILE, MODEL_VERSION_FILE, VOCAB_SOURCE_FILE, VOCAB_TARGET_FILE
from ..data.atomic_file import write_bytes_atomically
from ..data.subword import SUBWORD_FILES, SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE, SubwordModels
from ..data.vocab import Vocabulary
from ..errors import UserError
from ..model.config import ModelConfig
from ..model.seq2seq_model import Seq2SeqModel


def atomic_write_json(path: str, value) -> None:
    write_bytes_atomically(path, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8"))


def save_parameters_atomically(model: Seq2SeqModel, path: str) -> None:
    """Gluon `save_parameters` into a temporary file, then rename over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temp_path = os.path.join(directory, f".tmp-{os.path.basename(path)}-{os.getpid()}")
    model.save_parameters(temp_path)
    os.replace(temp_path, path)


def write_model_dir(model_dir: str, model: Seq2SeqModel, source_vocab: Vocabulary, target_vocab: Vocabulary,
                    extra_config: dict = None, subword: Optional[SubwordModels] = None) -> None:
    """Write everything serving needs. Each file is written atomically; config.json is written last.

    `subword`: the SentencePiece models (subword.src.model, subword.trg.model) that make the model take and
    give raw text; without them, subword files of an earlier model in the directory are removed.
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
    write_bytes_atomically(os.path.join(model_dir, MODEL_VERSION_FILE), __version__.encode())
    config = {"model": model.config.to_dict(), "version": __version__}
    if subword is not None:
        config["text"] = {"kind": "raw text, SentencePiece subwords", "source_model": SUBWORD_SOURCE_FILE,
                          "target_model": SUBWORD_TARGET_FILE, "joint": subword.joint}
    config.update(extra_config or {})
    atomic_write_json(os.path.join(model_dir, MODEL_CONFIG_FILE), config)


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
    """Load (model, source vocab, target vocab, config dict) from a model directory, hybridized, on `ctx`."""
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
