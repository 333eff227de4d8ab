"""Weight tying: which matrices one parameter serves (`weight_tying`, `weight_tying_type`), and the one-vocabulary
condition of tying the source embeddings with the target side.

trg_softmax: target embeddings = output layer weights (today's `weight_tying`); src_trg: source embeddings = target
embeddings; src_trg_softmax: all three. The functions take a ModelConfig or Hyperparameters (both have the fields).
"""

from ..data.vocab import Vocabulary
from ..errors import UserError


def ties_source_and_target(options) -> bool:
    """True when source and target embeddings are one matrix (src_trg, src_trg_softmax)."""
    return bool(options.weight_tying) and options.weight_tying_type.startswith("src_trg")


def ties_output_layer(options) -> bool:
    """True when the output layer's weight is the target embedding matrix (trg_softmax, src_trg_softmax)."""
    return bool(options.weight_tying) and options.weight_tying_type.endswith("softmax")


def check_joint_vocabulary(options, source_vocab: Vocabulary, target_vocab: Vocabulary, source_name: str,
                           target_name: str) -> None:
    """UserError (one line naming both files) unless the vocabularies are identical when the source and target
    embeddings are tied: one matrix has one row per token of one vocabulary."""
    if not ties_source_and_target(options) or source_vocab == target_vocab:
        return
    if len(source_vocab) != len(target_vocab):
        difference = f"{len(source_vocab)} and {len(target_vocab)} tokens"
    else:
        index = next(i for i, (a, b) in enumerate(zip(source_vocab.id_to_token, target_vocab.id_to_token)) if a != b)
        difference = (f"id {index} is {source_vocab.id_to_token[index]!r} in the first, "
                      f"{target_vocab.id_to_token[index]!r} in the second")
    raise UserError(f"hyperparameter 'weight_tying_type' = \"{options.weight_tying_type}\" ties the source and target "
                    f"embeddings, which needs one vocabulary, but {source_name} and {target_name} differ "
                    f"({difference}); prepare the data with 'python -m recordio_tools prepare --joint-vocab'")
