"""Bad-input cases: the data channels and the vocabularies."""
import os
import shutil
import struct

from tests.bad_inputs.job import data_path, job_case, overwrite, rewrite_json, truncate


def train_rec(base):
    return data_path(base, "train", "train.rec")


def write_records(path, pairs) -> None:
    from seq2seq.data.recordio_codec import RecordWriter
    with RecordWriter(path) as writer:
        for source, target in pairs:
            writer.write(source, target)


# data
@job_case("data-missing-channel", "data", "the validation channel is missing")
def _(base):
    shutil.rmtree(data_path(base, "validation"))


@job_case("data-empty-rec", "data", "train.rec is an empty file")
def _(base):
    overwrite(train_rec(base), b"")


@job_case("data-bad-magic", "data", "record 5 of train.rec does not start with the RecordIO magic number")
def _(base):
    with open(train_rec(base), "rb") as stream:
        data = bytearray(stream.read())
    magic = struct.pack("<I", 0xCED7230A)
    offsets = [i for i in range(0, len(data) - 3, 4) if data[i:i + 4] == magic]
    data[offsets[5]:offsets[5] + 4] = b"\xde\xad\xbe\xef"
    overwrite(train_rec(base), bytes(data))


@job_case("data-truncated-rec", "data", "train.rec is cut off in the middle of its last record")
def _(base):
    truncate(train_rec(base), os.path.getsize(train_rec(base)) - 5)


@job_case("data-token-beyond-vocab", "data", "a record holds a target token id beyond vocab.trg.json")
def _(base):
    write_records(train_rec(base), [([4, 5], [4, 5, 999] if record == 7 else [4, 5]) for record in range(10)])


@job_case("data-not-recordio", "data", "train.rec is a text file")
def _(base):
    overwrite(train_rec(base), "ein hund\tthe dog\n" * 20)


@job_case("data-only-empty-pairs", "data", "every validation pair has an empty side")
def _(base):
    write_records(data_path(base, "validation", "val.rec"), [([4, 5], [])] * 5)


# vocabularies
def source_vocab(base):
    return data_path(base, "vocab", "vocab.src.json")


@job_case("vocab-missing-file", "vocabulary", "vocab.trg.json is missing")
def _(base):
    os.remove(data_path(base, "vocab", "vocab.trg.json"))


@job_case("vocab-not-json", "vocabulary", "vocab.src.json is not JSON")
def _(base):
    overwrite(source_vocab(base), "<pad>\n<unk>\n")


def _without_unk(mapping):
    tokens = [t for t, _ in sorted(mapping.items(), key=lambda item: item[1]) if t != "<unk>"]
    return {t: i for i, t in enumerate(tokens)}


@job_case("vocab-missing-reserved", "vocabulary", "vocab.src.json lacks <unk>")
def _(base):
    rewrite_json(source_vocab(base), _without_unk)


@job_case("vocab-duplicate-id", "vocabulary", "two tokens of vocab.src.json share an id")
def _(base):
    rewrite_json(source_vocab(base), lambda mapping: dict(mapping, w0=mapping["w1"]))


@job_case("vocab-too-small-for-records", "vocabulary", "vocab.src.json comes from other data (fewer ids than the "
                                                       "records use)")
def _(base):
    from seq2seq.data.vocab import Vocabulary
    Vocabulary({t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", "w0", "w1"])}).save(source_vocab(base))
