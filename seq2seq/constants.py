"""Constants shared by every part of the project: reserved ids, file names, channel names."""

PAD_SYMBOL = "<pad>"
UNK_SYMBOL = "<unk>"
BOS_SYMBOL = "<s>"
EOS_SYMBOL = "</s>"
PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
RESERVED_SYMBOLS = (PAD_SYMBOL, UNK_SYMBOL, BOS_SYMBOL, EOS_SYMBOL)

SOURCE_FEATURE = "source"
TARGET_FEATURE = "target"

# SageMaker channels and the files inside them.
TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
VOCAB_CHANNEL = "vocab"
MODEL_CHANNEL = "model"            # a previous job's model.tar.gz (or model directory) to fine-tune
EMBEDDINGS_CHANNEL = "embeddings"  # pretrained word vectors (word2vec / GloVe text)
TRAIN_FILE = "train.rec"
VALIDATION_FILE = "val.rec"
VOCAB_SOURCE_FILE = "vocab.src.json"
VOCAB_TARGET_FILE = "vocab.trg.json"
MODEL_ARCHIVE_FILE = "model.tar.gz"  # what SageMaker puts in the model channel (the previous job's output)
EMBEDDINGS_SOURCE_FILE = "embed.src.txt"
EMBEDDINGS_TARGET_FILE = "embed.trg.txt"

# Files of a trained model under /opt/ml/model.
MODEL_PARAMS_FILE = "params.best"
MODEL_CONFIG_FILE = "config.json"
MODEL_METRICS_FILE = "metrics.json"
MODEL_VERSION_FILE = "version"
MODEL_SHORTLIST_FILE = "shortlist.npz"   # the decoding shortlist's table (absent: the whole vocabulary is scored)

# SentencePiece models of a raw-text setup: in the `prepare` output, the vocab channel and the model directory.
SUBWORD_SOURCE_FILE = "subword.src.model"
SUBWORD_TARGET_FILE = "subword.trg.model"
SUBWORD_FILES = (SUBWORD_SOURCE_FILE, SUBWORD_TARGET_FILE)

# The training state under /opt/ml/checkpoints: one directory, replaced whole at each checkpoint.
TRAINING_STATE_DIR = "training_state"
STATE_PARAMS_FILE = "params"                 # the model's parameters at the checkpoint
STATE_OPTIMIZER_FILE = "optimizer.states"    # gluon.Trainer's optimizer states
STATE_FILE = "state.json"                    # counters, history, sizes and SHA-256 of the two files above

# Files under /opt/ml/output.
FAILURE_FILE = "failure"
SUCCESS_FILE = "success"
METRICS_CSV_FILE = "metrics.csv"
METRICS_JSON_FILE = "metrics.json"
CURVES_PNG_FILE = "training_curves.png"
