"""The encoder-decoder model: its blocks, its programs and the parameter file.

Search (greedy, beam) lives in `seq2seq.inference.search` and uses `encode`, `decode_step` and `program`.
"""

import os
import re
import tempfile
from typing import Callable, Dict, Hashable, List, NamedTuple, Optional

import mxnet as mx
import numpy as np
from mxnet.gluon import Block, HybridBlock

from .config import ModelConfig
from ..errors import UserError
from .decoder import Bridge, Decoder
from .encoder import Encoder
from .programs import EncodeProgram, TrainingProgram
from .tying import ties_source_and_target


class EncodedSource(NamedTuple):
    """What the decoder attends to. encoded `(batch, src_len, hidden)`, keys `(batch, src_len, key)`,
    source_length `(batch,)` float."""

    encoded: mx.nd.NDArray
    keys: mx.nd.NDArray
    source_length: mx.nd.NDArray


class TrainingOutput(NamedTuple):
    """logits `(tokens, vocab)` of the requested positions; fed_ids `(batch, trg_len)` the ids fed at each
    position under scheduled sampling (None with full teacher forcing)."""

    logits: mx.nd.NDArray
    fed_ids: Optional[mx.nd.NDArray]


# Structural parameter names of files written before the bridge and the decoder cells had blocks of their own.
_LEGACY_NAMES = [(re.compile(r"^decoder\.(state_init|key_projection)\."), r"bridge.\1."),
                 (re.compile(r"^decoder\.layers\.(\d+)\.l0_"), r"decoder.cells.\1.")]


def current_parameter_name(name: str) -> str:
    for pattern, replacement in _LEGACY_NAMES:
        name = pattern.sub(replacement, name)
    return name


class Seq2SeqModel(Block):
    """Attentional RNN encoder-decoder. Children: `encoder`, `bridge`, `decoder`; they hold every parameter.

    - `training_logits(source, source_length, target_input, valid_positions, sample_mask)`: one program call for
      a whole batch (see `TrainingProgram`); `forward` is the same for every position `(batch, trg_len, vocab)`.
    - `encode(source, source_length)` -> (EncodedSource, initial decoder states).
    - `decode_step(previous_ids, states, encoded_source)` -> logits `(batch, vocab)`, attention `(batch, src_len)`,
      new states. States are lists of `(batch, hidden)` arrays, batch first, so search can reorder them.
    - `program(key, build)`: a cached program over the model's blocks, hybridized like the model.

    Programs are not children of the model: they own no parameters, only views on the three children.

    Weight tying (`weight_tying`, `weight_tying_type`) makes one Parameter serve several structural names:
    trg_softmax `decoder.embedding.weight` = `decoder.output_layer.weight`; src_trg `encoder.embedding.weight` =
    `decoder.embedding.weight`; src_trg_softmax all three. `collect_params()` holds such a parameter once (the
    optimiser updates it once) and parameter files hold it once, under its first structural name (see
    `unique_parameters`).
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        if ties_source_and_target(config) and config.source_vocab_size != config.target_vocab_size:
            raise UserError(f"weight_tying_type = \"{config.weight_tying_type}\" shares the source and target "
                            f"embeddings, which needs one vocabulary: the source has {config.source_vocab_size} "
                            f"tokens, the target {config.target_vocab_size} (prepare the data with --joint-vocab)")
        with self.name_scope():
            self.encoder = Encoder(config, prefix="encoder_")
            self.bridge = Bridge(config, prefix="bridge_")
            shared = self.encoder.embedding.params if ties_source_and_target(config) else None
            self.decoder = Decoder(config, source_embedding_params=shared, prefix="decoder_")
        self._programs = _ProgramCache()
        self._hybridize_args = None
        self._fixed_encoder_parameters: Optional[Dict] = None   # ctx -> flat parameters, see fix_parameters
        self._fixed_output_factors: Optional[Dict] = None       # (rank, ctx) -> output_factors, see fix_parameters

    def hybridize(self, active=True, **kwargs):
        super().hybridize(active, **kwargs)
        self._hybridize_args = (active, kwargs)
        self._programs.hybridize(active, **kwargs)

    def program(self, key: Hashable, build: Callable[["Seq2SeqModel"], HybridBlock]) -> HybridBlock:
        """The program cached under `key`, built by `build(model)` on first use and hybridized like the model."""
        program = self._programs.get(key)
        if program is None:
            program = build(self)
            if self._hybridize_args is not None:
                active, kwargs = self._hybridize_args
                program.hybridize(active, **kwargs)
            self._programs.put(key, program)
        return program

    # ----- training -----
    def training_logits(self, source, source_length, target_input, valid_positions,
                        sample_mask=None) -> TrainingOutput:
        """Logits of the positions `valid_positions` `(tokens,)` int64 of the flattened `(batch, trg_len)` target.

        sample_mask None: full teacher forcing; otherwise `(batch, trg_len)` with 1 where the reference id is fed
        (scheduled sampling; see `TrainingProgram`). Without input feeding and sampling this is one fused pass
        over the target; otherwise the decoder is unrolled over the bucket's length inside one program.
        """
        sampled = sample_mask is not None
        length = target_input.shape[1] if (self.config.input_feeding or sampled) else None
        program = self.program(("train", length, sampled), lambda m: TrainingProgram(
            m.encoder, m.bridge, m.decoder, length, sampled))
        if not sampled:
            return TrainingOutput(program(source, source_length, target_input, valid_positions), None)
        logits, fed_ids = program(source, source_length, target_input, valid_positions, sample_mask)
        return TrainingOutput(logits, fed_ids)

    def forward(self, source, source_length, target_input, sample_mask=None):
        """Logits `(batch, trg_len, vocab)` for target_input `(batch, trg_len)` (starting with <s>)."""
        batch, length = target_input.shape
        positions = mx.nd.arange(batch * length, ctx=target_input.context, dtype="int64")
        logits = self.training_logits(source, source_length, target_input, positions, sample_mask).logits
        return logits.reshape((batch, length, -1))

    # ----- inference -----
    def fix_parameters(self) -> None:
        """Declare that the parameters change only through `load_parameters` from now on (a model loaded for
        decoding): the encoder layers' flat parameters are then written once per device instead of at every
        `encode`, and the output layer's factors (`output_factors`) are computed once. A model that trains must
        not be fixed."""
        self._fixed_encoder_parameters = {}
        self._fixed_output_factors = {}

    def encode(self, source, source_length):
        """source `(batch, src_len)`, source_length `(batch,)` -> (EncodedSource, list of initial states)."""
        program = self.program(("encode",), lambda m: EncodeProgram(m.encoder, m.bridge))
        outputs = program(source, source_length, *self._encoder_flat_parameters(source.context))
        return EncodedSource(outputs[0], outputs[1], source_length), list(outputs[2:])

    def _encoder_flat_parameters(self, ctx) -> List:
        fixed = self._fixed_encoder_parameters
        if fixed is not None and ctx in fixed:
            return fixed[ctx]
        flat = [layer.flat_parameters(ctx) for layer in self.encoder.fused_layers()]
        if fixed is not None:
            fixed[ctx] = flat
        return flat

    def decode_step(self, previous_ids, states: List, encoded_source: EncodedSource):
        """previous_ids `(batch,)` -> logits `(batch, vocab)`, attention `(batch, src_len)`, new states."""
        outputs = self.decoder(previous_ids, encoded_source.encoded, encoded_source.keys,
                               encoded_source.source_length, *states)
        return outputs[0], outputs[1], list(outputs[2:])

    def output_parameters(self, ctx=None):
        """The output layer's weight `(target_vocab, hidden)` and bias `(target_vocab,)` on `ctx`, for search
        programs that project onto some of its rows (a shortlist)."""
        layer = self.decoder.output_layer
        return layer.weight.data(ctx), layer.bias.data(ctx)

    def output_factors(self, rank: int, ctx=None):
        """The output weight's best rank-`rank` approximation W ≈ factor · projection (truncated SVD), for search
        programs that estimate the logits of the rows they do not score: projection `(rank', hidden)`, factor
        `(target_vocab, rank')` on `ctx`, rank' = min(rank, hidden); exact when rank' is the hidden size. Computed
        once per device for a fixed model (`fix_parameters`), else at every call."""
        fixed = self._fixed_output_factors
        key = (rank, ctx)
        if fixed is not None and key in fixed:
            return fixed[key]
        weight = self.decoder.output_layer.weight.data(ctx)
        matrix = weight.asnumpy().astype(np.float64)
        _, directions = np.linalg.eigh(matrix.T @ matrix)     # right singular vectors, ascending singular values
        projection = directions[:, ::-1][:, :min(rank, matrix.shape[1])].T
        factors = (mx.nd.array(projection, ctx=weight.context, dtype=weight.dtype),
                   mx.nd.array(matrix @ projection.T, ctx=weight.context, dtype=weight.dtype))
        if fixed is not None:
            fixed[key] = factors
        return factors

    # ----- parameters -----
    def initialize_parameters(self, initializer, ctx):
        """Initialize every parameter (all shapes are known at construction)."""
        self.collect_params().initialize(initializer, ctx=ctx, force_reinit=True)

    def unique_parameters(self) -> Dict[str, mx.gluon.Parameter]:
        """Structural name -> Parameter with each parameter once, under the first of its names in the model's order
        (encoder, bridge, decoder): a tied matrix is `encoder.embedding.weight` (src_trg*) or
        `decoder.embedding.weight` (trg_softmax). Parameter files hold these names."""
        unique: Dict[str, mx.gluon.Parameter] = {}
        seen = set()
        for name, parameter in self._collect_params_with_prefix().items():
            if id(parameter) not in seen:
                seen.add(id(parameter))
                unique[name] = parameter
        return unique

    def shared_names(self) -> Dict[str, List[str]]:
        """Every structural name -> all the structural names of its parameter (one entry when not tied)."""
        names: Dict[int, List[str]] = {}
        params = self._collect_params_with_prefix()
        for name, parameter in params.items():
            names.setdefault(id(parameter), []).append(name)
        return {name: names[id(parameter)] for name, parameter in params.items()}

    def save_parameters(self, filename, deduplicate=True):
        """Gluon's parameter file with every parameter once (`unique_parameters`); `deduplicate=False` writes a
        tied parameter under each of its names, as files written before weight_tying_type did."""
        params = self.unique_parameters() if deduplicate else self._collect_params_with_prefix()
        mx.nd.save(filename, {name: parameter._reduce() for name, parameter in params.items()})

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False, **kwargs):
        """Gluon's loader; files with the structural names of earlier versions are renamed on the way in."""
        if self._fixed_encoder_parameters is not None:
            self._fixed_encoder_parameters = {}                  # written again from the new values
        if self._fixed_output_factors is not None:
            self._fixed_output_factors = {}
        loaded = mx.nd.load(filename)
        renamed = {current_parameter_name(name): value for name, value in loaded.items()}
        if list(renamed) == list(loaded):
            return super().load_parameters(filename, ctx, allow_missing, ignore_extra, **kwargs)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "renamed.params")
            mx.nd.save(path, renamed)
            return super().load_parameters(path, ctx, allow_missing, ignore_extra or self._legacy_extras(renamed),
                                           **kwargs)

    def _legacy_extras(self, renamed: Dict) -> bool:
        """Old files hold an initial-state projection even for `rnn_decoder_state_init=zero`, which now has none."""
        return self.config.rnn_decoder_state_init == "zero" and any(n.startswith("bridge.state_init.")
                                                                     for n in renamed)


class _ProgramCache:
    """Programs by key. A plain object rather than a dict attribute: the programs are not the model's children."""

    def __init__(self):
        self._programs: Dict[Hashable, HybridBlock] = {}

    def get(self, key):
        return self._programs.get(key)

    def put(self, key, program):
        self._programs[key] = program

    def hybridize(self, active, **kwargs):
        for program in self._programs.values():
            program.hybridize(active, **kwargs)
