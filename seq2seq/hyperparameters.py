"""The one gate where SageMaker's string hyperparameters become typed, validated values.

SageMaker hands every hyperparameter over as a string, and newer SDKs JSON-quote them, so one value
may arrive as `64`, `"64"` or `"\\"64\\""`. `parse_hyperparameters` accepts all of these, checks every
value against its allowed range, and reports every problem at once in a `HyperparameterError`.
The names and defaults of Amazon's built-in Seq2Seq algorithm are kept exactly; ours are added.
"""

import dataclasses
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Optional

from seq2seq.errors import HyperparameterError, UserError
from seq2seq.typed_values import (
    Bool, Choice, Float, Hyperparameter, Int, InvalidValue, Kind, Maybe, Pattern, decode_value,
)

AMAZON = "amazon"
OURS = "ours"
COMPAT = "compat"  # Amazon's name, accepted and validated, without effect here (the CNN model)

DEVICES_PATTERN = r"auto|cpu|cpu:[1-9][0-9]*|gpu:[0-9]+(,[0-9]+)*"
RESERVED_PREFIX = "sagemaker_"
RESERVED_KEYS = ("_tuning_objective_metric", "_ps_port", "_ps_verbose")
# Other names accepted for a hyperparameter: SageMaker's `_ps_port`, and `epochs`, the name from which
# SageMaker's Hyperband tuning strategy reads a training job's epoch budget.
ALIASES = {"_ps_port": "ps_port", "epochs": "max_num_epochs"}

_DROPOUT = Float(0.0, 1.0, high_open=True)
_POSITIVE = Int(1)


def _hp(default, kind: Kind, doc: str, origin: str = AMAZON, default_text: str = None, model: bool = False):
    """A hyperparameter field: its default, allowed values, description and where the name comes from.

    `model=True` declares an architecture option: `ModelConfig` (seq2seq/model/config.py) takes a field of the
    same name, type and default from it, and the value is saved with the model in config.json.
    """
    meta = {"kind": kind, "doc": doc, "origin": origin, "default_text": default_text, "model": model}
    return field(default=default, metadata=meta)


def _describe(name: str, value) -> str:
    return f"hyperparameter '{name}' = {json.dumps(value)}"


def even_hidden_problems(values) -> list:
    """The bi-directional encoder gives each direction half of rnn_num_hidden."""
    if values["rnn_num_hidden"] % 2:
        return [f"{_describe('rnn_num_hidden', values['rnn_num_hidden'])}: must be even (the bidirectional "
                "encoder gives each direction half); allowed: even integer >= 2"]
    return []


def weight_tying_problems(values) -> list:
    """Tied output and target embedding matrices need the same width."""
    if (values["weight_tying"] and values.get("weight_tying_type", "trg_softmax").endswith("softmax")
            and values["num_embed_target"] != values["rnn_num_hidden"]):
        return [f"hyperparameter 'weight_tying' = true needs num_embed_target ({values['num_embed_target']}) "
                f"equal to rnn_num_hidden ({values['rnn_num_hidden']})"]
    return []


def tying_type_problems(values) -> list:
    """Source and target embeddings can share one matrix only when they have the same width."""
    if (values["weight_tying"] and values["weight_tying_type"].startswith("src_trg")
            and values["num_embed_source"] != values["num_embed_target"]):
        return [f"hyperparameter 'weight_tying_type' = \"{values['weight_tying_type']}\" needs num_embed_source "
                f"({values['num_embed_source']}) equal to num_embed_target ({values['num_embed_target']})"]
    return []


# Checks between architecture options: run by parse_hyperparameters and by ModelConfig (a loaded config.json).
MODEL_CHECKS = (
    (("rnn_num_hidden",), even_hidden_problems),
    (("weight_tying", "weight_tying_type", "num_embed_target", "rnn_num_hidden"), weight_tying_problems),
    (("weight_tying", "weight_tying_type", "num_embed_source", "num_embed_target"), tying_type_problems),
)


@dataclass(frozen=True)
class Hyperparameters:
    """Every hyperparameter of the training job, typed and validated. Build it with `parse_hyperparameters`."""

    # --- Amazon's built-in Seq2Seq names and defaults ---
    batch_size: int = _hp(64, _POSITIVE, "Mini-batch size in sentence pairs, split across all devices.")
    beam_size: int = _hp(5, _POSITIVE, "Beam width for BLEU during training and for inference.")
    bleu_sample_size: int = _hp(
        0, Int(-1, allowed="-1 (all), 0 (no BLEU) or integer >= 1"),
        "Validation sentences decoded for BLEU; 0 = no BLEU, -1 = all.")
    bucket_width: int = _hp(10, _POSITIVE, "Width of the length buckets (tokens).")
    bucketing_enabled: bool = _hp(True, Bool(), "false = pad every batch to the maximum lengths.")
    checkpoint_frequency_num_batches: int = _hp(
        1000, _POSITIVE, "Evaluate on validation and save a checkpoint every N updates.")
    checkpoint_threshold: int = _hp(
        3, _POSITIVE, "Early stopping after N checkpoints without improvement of optimized_metric.")
    clip_gradient: float = _hp(1.0, Float(), "Clip every gradient element to [-x, x]; <= 0 turns it off.")
    cnn_activation_type: str = _hp(
        "glu", Choice("glu", "relu", "softrelu", "sigmoid", "tanh"), "CNN activation (CNN model not supported).",
        COMPAT)
    cnn_hidden_dropout: float = _hp(0.0, _DROPOUT, "CNN dropout (CNN model not supported).", COMPAT)
    cnn_kernel_width_decoder: int = _hp(5, _POSITIVE, "CNN decoder kernel width (CNN model not supported).", COMPAT)
    cnn_kernel_width_encoder: int = _hp(3, _POSITIVE, "CNN encoder kernel width (CNN model not supported).", COMPAT)
    cnn_num_hidden: int = _hp(512, _POSITIVE, "CNN hidden units (CNN model not supported).", COMPAT)
    decoder_type: str = _hp("rnn", Choice("rnn", "cnn"), "Decoder type; only rnn is supported.")
    embed_dropout_source: float = _hp(0.0, _DROPOUT, "Dropout on the source embeddings.", model=True)
    embed_dropout_target: float = _hp(0.0, _DROPOUT, "Dropout on the target embeddings.", model=True)
    encoder_type: str = _hp("rnn", Choice("rnn", "cnn"), "Encoder type; only rnn is supported.")
    fixed_rate_lr_half_life: int = _hp(
        10, _POSITIVE, "Learning-rate half-life, in checkpoints, for the fixed_rate_* schedulers.")
    learning_rate: float = _hp(0.0003, Float(0.0, low_open=True), "Initial learning rate.")
    loss_type: str = _hp("cross-entropy", Choice("cross-entropy"), "Training loss.")
    lr_scheduler_type: str = _hp(
        "plateau_reduce", Choice("plateau_reduce", "fixed_rate_inv_t", "fixed_rate_inv_sqrt_t", "linear_decay"),
        "Learning-rate schedule; linear_decay falls linearly from learning_rate after warm-up to zero at "
        "max_num_batches.")
    max_num_batches: int = _hp(
        -1, Int(-1, exclude=(0,), allowed="-1 (no limit) or integer >= 1"),
        "Maximum number of updates; -1 = no limit.")
    max_num_epochs: Optional[int] = _hp(
        None, Maybe(_POSITIVE), "Stop after this many epochs; if set, training runs this long despite "
        "early stopping.")
    max_seq_len_source: int = _hp(100, _POSITIVE, "Longer source sequences are truncated (tokens).", model=True)
    max_seq_len_target: int = _hp(100, _POSITIVE, "Longer target sequences are truncated (tokens).", model=True)
    min_num_epochs: int = _hp(0, Int(0), "Epochs before early stopping may fire.")
    momentum: Optional[float] = _hp(None, Maybe(Float(0.0, 1.0, high_open=True)), "Momentum; sgd only.")
    num_embed_source: int = _hp(512, _POSITIVE, "Source embedding size.", model=True)
    num_embed_target: int = _hp(512, _POSITIVE, "Target embedding size.", model=True)
    num_layers_decoder: int = _hp(1, _POSITIVE, "Decoder RNN layers.", model=True)
    num_layers_encoder: int = _hp(1, _POSITIVE, "Encoder RNN layers (the first one is bidirectional).", model=True)
    optimized_metric: str = _hp(
        "perplexity", Choice("perplexity", "accuracy", "bleu"),
        "Validation metric for early stopping and the choice of the best checkpoint.")
    optimizer_type: str = _hp("adam", Choice("adam", "sgd", "rmsprop", "adadelta"), "Optimizer.")
    plateau_reduce_lr_factor: float = _hp(
        0.5, Float(0.0, 1.0, low_open=True, high_open=True), "Learning-rate multiplier on a plateau.")
    plateau_reduce_lr_threshold: int = _hp(
        3, _POSITIVE, "Checkpoints without improvement before the learning rate is reduced.")
    rnn_attention_in_upper_layers: bool = _hp(
        True, Bool(), "Feed the attention context to the upper decoder layers too.", model=True)
    rnn_attention_num_hidden: Optional[int] = _hp(
        None, Maybe(_POSITIVE), "Attention MLP size.", default_text="= rnn_num_hidden", model=True)
    rnn_attention_type: str = _hp(
        "mlp", Choice("dot", "fixed", "mlp", "bilinear"), "Attention: mlp (concat), bilinear (general), dot, fixed.",
        model=True)
    rnn_cell_type: str = _hp("lstm", Choice("lstm", "gru"), "RNN cell.", model=True)
    rnn_decoder_hidden_dropout: float = _hp(
        0.0, _DROPOUT, "Dropout on the hidden state that combines context and RNN output.", model=True)
    rnn_decoder_state_init: str = _hp(
        "last", Choice("last", "avg", "zero"), "Decoder initial state from the encoder.", model=True)
    rnn_first_residual_layer: int = _hp(
        2, Int(2), "First layer (1-based) with a residual connection.", model=True)
    rnn_num_hidden: int = _hp(1024, _POSITIVE, "RNN hidden units; even (each encoder direction gets half).", model=True)
    rnn_residual_connections: bool = _hp(False, Bool(), "Residual connections between stacked RNN layers.", model=True)
    training_metric: str = _hp("perplexity", Choice("perplexity", "accuracy"),
                               "Accepted for compatibility with Amazon's algorithm; no effect (every checkpoint "
                               "reports validation perplexity and accuracy; optimized_metric picks the best).")
    weight_decay: float = _hp(0.0, Float(0.0), "L2 weight decay.")
    weight_init_scale: float = _hp(2.34, Float(0.0, low_open=True), "Scale of the xavier or uniform init.")
    weight_init_type: str = _hp("xavier", Choice("xavier", "uniform", "gaussian"),
                                "Weight initializer; gaussian = zero-mean normal with weight_init_sigma (biases zero).")
    xavier_factor_type: str = _hp("in", Choice("in", "out", "avg"), "Xavier fan: in, out or their average.")

    # --- ours ---
    label_smoothing: float = _hp(0.1, Float(0.0, 1.0, high_open=True), "Label smoothing of the loss.", OURS)
    length_penalty_alpha: float = _hp(
        1.0, Float(0.0), "Beam score divided by ((beta + len) / (beta + 1)) ** alpha; 0 = off.", OURS)
    length_penalty_beta: float = _hp(0.0, Float(0.0), "See length_penalty_alpha.", OURS)
    teacher_forcing_ratio: float = _hp(
        1.0, Float(0.0, 1.0), "Probability of feeding the reference token (else the model's own).", OURS)
    teacher_forcing_decay_batches: int = _hp(
        0, Int(0), "If > 0, the ratio falls linearly from 1.0 to teacher_forcing_ratio over N updates.", OURS)
    input_feeding: bool = _hp(
        True, Bool(), "Feed the previous attentional state to the decoder input.", OURS, model=True)
    weight_tying: bool = _hp(
        False, Bool(), "Share target embeddings and output layer; needs num_embed_target = rnn_num_hidden.", OURS,
        model=True)
    warmup_num_batches: int = _hp(0, Int(0), "Linear learning-rate warm-up over N updates.", OURS)
    gradient_clip_norm: float = _hp(-1.0, Float(), "Clip the global gradient norm; <= 0 turns it off.", OURS)
    devices: str = _hp(
        "auto", Pattern(DEVICES_PATTERN, "auto, cpu, cpu:N or gpu:I,J,... (e.g. gpu:0,1)"),
        "auto = every GPU, else one CPU; cpu:N = N CPU replicas; gpu:0,1 = those GPUs.", OURS)
    seed: int = _hp(13, Int(0, 2 ** 32 - 1), "Random seed.", OURS)
    log_frequency_num_batches: int = _hp(100, _POSITIVE, "Log training progress every N updates.", OURS)
    precision: str = _hp(
        "fp32", Choice("fp32", "fp16"), "Training arithmetic; fp16 = mixed precision with loss scaling (GPU only).",
        OURS)
    ps_port: int = _hp(8000, Int(1, 65535), "Parameter-server port (SageMaker's _ps_port is accepted).", OURS)
    peer_timeout_seconds: float = _hp(
        60.0, Float(0.0, low_open=True), "Seconds before an unreachable peer host fails the job.", OURS)
    fixed_param_strategy: str = _hp(
        "none", Choice("none", "embeddings", "encoder", "all_except_decoder"),
        "Parameters kept fixed while training (fine-tuning): embeddings = both embedding matrices; encoder = the "
        "encoder with the source embeddings; all_except_decoder = encoder and bridge.", OURS)
    freeze_embeddings_source: bool = _hp(
        False, Bool(), "Keep the source embeddings fixed (e.g. pretrained ones from the embeddings channel).", OURS)
    freeze_embeddings_target: bool = _hp(
        False, Bool(), "Keep the target embeddings fixed (with weight_tying, the output layer's weights too).", OURS)
    shortlist_k: int = _hp(
        50, Int(0), "Decoding shortlist: each source token's k most probable translations (IBM Model 1 on the "
        "training pairs) are scored, with the frequent ones; 0 = no shortlist, the whole vocabulary.", OURS)
    shortlist_frequent: int = _hp(
        300, Int(0), "Decoding shortlist: the N most frequent target tokens are always scored.", OURS)
    adam_beta1: float = _hp(0.9, Float(0.0, 1.0, high_open=True), "Adam's beta1.", OURS)
    adam_beta2: float = _hp(0.999, Float(0.0, 1.0, high_open=True), "Adam's beta2.", OURS)
    adam_epsilon: float = _hp(1e-8, Float(0.0, low_open=True), "Adam's epsilon.", OURS)
    adadelta_rho: float = _hp(0.95, Float(0.0, 1.0, low_open=True, high_open=True), "Adadelta's rho.", OURS)
    adadelta_epsilon: float = _hp(1e-6, Float(0.0, low_open=True), "Adadelta's epsilon.", OURS)
    weight_init_sigma: float = _hp(
        0.01, Float(0.0, low_open=True), "Standard deviation of weight_init_type = gaussian.", OURS)
    rnn_h2h_init: str = _hp(
        "default", Choice("default", "orthogonal"),
        "Recurrent (hidden-to-hidden) weights: default = weight_init_type; orthogonal = a random orthogonal "
        "matrix per gate.", OURS)
    layer_normalization: bool = _hp(
        False, Bool(), "Layer-normalised LSTM/GRU cells in encoder and decoder (slower: no fused RNN operator).",
        OURS, model=True)
    weight_tying_type: str = _hp(
        "trg_softmax", Choice("trg_softmax", "src_trg", "src_trg_softmax"),
        "With weight_tying: what shares one matrix: trg_softmax = target embeddings and output layer; src_trg = "
        "source and target embeddings (one vocabulary, prepare --joint-vocab); src_trg_softmax = all three.",
        OURS, model=True)
    curriculum: str = _hp(
        "none", Choice("none", "length"),
        "length = train on the buckets of short sentences first (see curriculum_short_length), then on all.", OURS)
    curriculum_short_length: int = _hp(
        20, _POSITIVE, "Curriculum: the longest source and target (tokens) of the first phase.", OURS)
    curriculum_fraction: float = _hp(
        0.9, Float(0.0, 1.0, low_open=True, high_open=True),
        "Curriculum: share of max_num_batches spent in the first phase (unless curriculum_num_epochs is set).", OURS)
    curriculum_num_epochs: Optional[int] = _hp(
        None, Maybe(_POSITIVE), "Curriculum: epochs of the first phase, instead of curriculum_fraction.", OURS)
    average_checkpoints: int = _hp(
        0, Int(0), "Export the average of the parameters of the last N checkpoints (Sockeye's average); 0 or 1 = "
        "the best checkpoint as it is.", OURS)
    tensorboard: bool = _hp(
        True, Bool(), "Write TensorBoard event files (host 0) to tensorboardoutputconfig.json's LocalPath, else "
        "/opt/ml/output/tensorboard.", OURS)

    # Reserved keys (sagemaker_*, _tuning_objective_metric, ...) as given; not hyperparameters.
    reserved: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        """Validate every field (so direct construction and `dataclasses.replace` are checked too)
        and store the canonical values (e.g. 64.0 -> 64, "GPU:0" -> "gpu:0")."""
        values = self.to_dict()
        errors, typed = _check_fields(values)
        errors += _cross_field_errors(typed, failed=set(values) - set(typed))
        _raise_if_errors(errors)
        for name, value in typed.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "reserved", dict(self.reserved))

    def teacher_forcing_at(self, num_updates: int) -> float:
        """Probability of feeding the reference token after `num_updates` updates (see the decay field)."""
        if self.teacher_forcing_decay_batches == 0:
            return self.teacher_forcing_ratio
        progress = min(1.0, max(0, num_updates) / self.teacher_forcing_decay_batches)
        return 1.0 + (self.teacher_forcing_ratio - 1.0) * progress

    def to_dict(self) -> dict:
        """The hyperparameters as a JSON-safe dict (without the reserved keys)."""
        return {f.name: getattr(self, f.name) for f in _fields()}

    @classmethod
    def from_dict(cls, values: dict) -> "Hyperparameters":
        """Inverse of `to_dict`; validated like `parse_hyperparameters`."""
        return parse_hyperparameters(values)


def _fields():
    return [f for f in dataclasses.fields(Hyperparameters) if "kind" in f.metadata]


def names() -> list:
    """Names of every hyperparameter, in declaration order."""
    return [f.name for f in _fields()]


def model_fields() -> list:
    """The dataclass fields of the architecture options (declared with `model=True`), in declaration order."""
    return [f for f in _fields() if f.metadata["model"]]


def _check_fields(values: dict, given: dict = None):
    """Parse each decoded value with its kind. Returns (errors, typed values of those that passed).

    `given` holds the values as the user wrote them, for the error messages.
    """
    errors, typed, given = [], {}, given or values
    kinds = {f.name: f.metadata["kind"] for f in _fields()}
    for name, value in values.items():
        try:
            typed[name] = kinds[name].parse(value)
        except InvalidValue as error:
            errors.append(Hyperparameter(name, given.get(name, value)).problem(error))
    return errors, typed


def _check_cnn(v):
    return [f"{_describe(n, v[n])}: the convolutional (cnn) model is not supported here; allowed: rnn"
            for n in ("encoder_type", "decoder_type") if v[n] != "rnn"]


def _check_momentum(v):
    if v["momentum"] is not None and v["optimizer_type"] != "sgd":
        return [f"{_describe('momentum', v['momentum'])}: only allowed with optimizer_type = \"sgd\" "
                f"(optimizer_type is {json.dumps(v['optimizer_type'])})"]
    return []


def _check_schedule_length(v):
    """linear_decay and the fractional curriculum are defined by the total number of updates."""
    errors = []
    if v["lr_scheduler_type"] == "linear_decay" and v["max_num_batches"] <= 0:
        errors.append("hyperparameter 'lr_scheduler_type' = \"linear_decay\" needs max_num_batches >= 1 "
                      "(the update at which the rate reaches zero; max_num_batches is -1)")
    if v["curriculum"] == "length" and v["curriculum_num_epochs"] is None and v["max_num_batches"] <= 0:
        errors.append("hyperparameter 'curriculum' = \"length\" needs curriculum_num_epochs or max_num_batches >= 1 "
                      "(curriculum_fraction is a share of max_num_batches, which is -1)")
    if v["lr_scheduler_type"] == "linear_decay" and v["warmup_num_batches"] >= v["max_num_batches"] > 0:
        errors.append(f"hyperparameter 'warmup_num_batches' = {v['warmup_num_batches']}: must be below "
                      f"max_num_batches ({v['max_num_batches']}) with lr_scheduler_type = \"linear_decay\"")
    return errors


def _check_epochs(v):
    if v["max_num_epochs"] is not None and v["min_num_epochs"] > v["max_num_epochs"]:
        return [f"{_describe('min_num_epochs', v['min_num_epochs'])}: must not exceed "
                f"max_num_epochs ({v['max_num_epochs']})"]
    return []


def _check_bleu(v):
    if v["optimized_metric"] == "bleu" and v["bleu_sample_size"] == 0:
        return ["hyperparameter 'optimized_metric' = \"bleu\" needs bleu_sample_size -1 (all) or > 0 "
                "(bleu_sample_size is 0, which computes no BLEU)"]
    return []


def _check_gpus(v):
    devices = v["devices"]
    if devices.startswith("gpu:"):
        ids = devices[4:].split(",")
        if len(set(ids)) != len(ids):
            return [f"{_describe('devices', devices)}: a GPU is listed twice"]
    return []


_CROSS_CHECKS = (
    (("encoder_type", "decoder_type"), _check_cnn),
    *MODEL_CHECKS,
    (("momentum", "optimizer_type"), _check_momentum),
    (("min_num_epochs", "max_num_epochs"), _check_epochs),
    (("lr_scheduler_type", "max_num_batches", "curriculum", "curriculum_num_epochs", "warmup_num_batches"),
     _check_schedule_length),
    (("optimized_metric", "bleu_sample_size"), _check_bleu),
    (("devices",), _check_gpus),
)


def _cross_field_errors(typed: dict, failed: set) -> list:
    """Checks between fields, skipping those that involve a field that already failed."""
    values = {f.name: f.default for f in _fields()}
    values.update(typed)
    errors = []
    for involved, check in _CROSS_CHECKS:
        if not failed.intersection(involved):
            errors += check(values)
    return errors


def _raise_if_errors(errors: list, source: str = None) -> None:
    if not errors:
        return
    if len(errors) == 1:
        message = errors[0]
    else:
        message = f"{len(errors)} hyperparameter errors: " + " ".join(
            f"({number}) {error};" for number, error in enumerate(errors, 1))[:-1]
    if source:
        message = f"{source}: {message}"
    error = HyperparameterError(message)
    error.errors = list(errors)
    raise error


def is_reserved(key: str) -> bool:
    """True for keys that SageMaker adds (sagemaker_*, _tuning_objective_metric, _ps_port, _ps_verbose)."""
    return key.startswith(RESERVED_PREFIX) or key in RESERVED_KEYS


def _unknown_key_message(key: str) -> str:
    known = names()
    normalized = key.strip().lower().replace("-", "_")
    match = [normalized] if normalized in known else difflib.get_close_matches(normalized, known, n=1)
    hint = f"did you mean '{match[0]}'?" if match else "see the README for the list of hyperparameters"
    return f"unknown hyperparameter '{key}'; {hint}"


def parse_hyperparameters(raw: dict, source: str = None) -> Hyperparameters:
    """Validate SageMaker's hyperparameters (`{name: value}`, values usually strings) into `Hyperparameters`.

    Absent names take their defaults. Raises `HyperparameterError` listing every problem; `source`
    (e.g. the file name) prefixes its message.
    """
    if not isinstance(raw, dict):
        _raise_if_errors([f"hyperparameters must be a JSON object, got {type(raw).__name__}"], source)
    errors, decoded, reserved = [], {}, {}
    known = set(names())
    for key, value in raw.items():
        key = str(key)
        if is_reserved(key):
            reserved[key] = value
        elif key in known:
            decoded[key] = decode_value(value)
        elif key not in ALIASES:  # an alias sets its hyperparameter in _apply_aliases
            errors.append(_unknown_key_message(key))
    _apply_aliases(raw, decoded, errors)
    given = {name: raw.get(name, raw.get(_alias_of(name))) for name in decoded}
    field_errors, typed = _check_fields(decoded, given)
    failed = set(decoded) - set(typed)
    errors += field_errors + _cross_field_errors(typed, failed)
    _raise_if_errors(errors, source)
    return Hyperparameters(**typed, reserved=reserved)


def _apply_aliases(raw: dict, decoded: dict, errors: list) -> None:
    """An alias (`_ps_port`, `epochs`) sets its hyperparameter; giving both with different values is an error."""
    for alias, name in ALIASES.items():
        if alias not in raw:
            continue
        value = decode_value(raw[alias])
        if name in decoded and str(decoded[name]) != str(value):
            errors.append(f"hyperparameter '{name}' = {decoded[name]!r} contradicts '{alias}' = {value!r}")
        decoded.setdefault(name, value)


def _alias_of(name: str):
    return next((alias for alias, target in ALIASES.items() if target == name), None)


def load_hyperparameters_file(path: str) -> Hyperparameters:
    """Read SageMaker's hyperparameters.json. A missing file means every default."""
    if not os.path.exists(path):
        return Hyperparameters()
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from exc
    return parse_hyperparameters(raw, source=path)


def _default_text(f) -> str:
    if f.metadata["default_text"]:
        return f.metadata["default_text"]
    return "none" if f.default is None else json.dumps(f.default).strip('"')


def documentation_rows() -> list:
    """Rows (name, default, allowed, description, amazon_default or 'ours') for the README table."""
    rows = []
    for f in _fields():
        default = _default_text(f)
        origin = OURS if f.metadata["origin"] == OURS else default
        rows.append((f.name, default, f.metadata["kind"].allowed, f.metadata["doc"], origin))
    return rows


def parse_devices(devices: str):
    """Split a validated `devices` value into (kind, count, gpu_ids).

    'auto' -> ('auto', 0, ()); 'cpu' -> ('cpu', 1, ()); 'cpu:3' -> ('cpu', 3, ()); 'gpu:0,2' -> ('gpu', 2, (0, 2)).
    """
    if not re.fullmatch(DEVICES_PATTERN, devices):
        raise HyperparameterError(f"{_describe('devices', devices)}: allowed: auto, cpu, cpu:N or gpu:I,J,...")
    if devices == "auto":
        return "auto", 0, ()
    kind, _, rest = devices.partition(":")
    if kind == "cpu":
        return "cpu", int(rest or 1), ()
    ids = tuple(int(i) for i in rest.split(","))
    return "gpu", len(ids), ids
