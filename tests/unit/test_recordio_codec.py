"""The RecordIO-protobuf codec: exact bytes, round trips, continuation flags, corruption errors."""

import io
import os
import random
import re
import struct
import threading

import numpy as np
import pytest

from seq2seq.data import recordio_batch
from seq2seq.data.record_schema import POOL, Record
from seq2seq.data.recordio_codec import (MAGIC, RecordWriter, count_records, encode_pair, frame_record,
                                         pairs_to_bytes, read_pairs, read_pairs_from_bytes,
                                         read_pairs_from_stream)
from seq2seq.errors import DataFormatError, UserError

PROTO_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "seq2seq", "data", "record.proto")
MAGIC_LE = struct.pack("<I", 0xCED7230A)
BOUNDARY_IDS = [0, 1, 127, 128, 16383, 16384, 2 ** 21 - 1, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1]


def random_pairs(seed, count, long_every=0):
    rng = random.Random(seed)

    def side(index):
        if long_every and index % long_every == 0:
            length = rng.choice([5000, 70000])
        else:
            length = rng.choice([0, 1, 2, rng.randint(0, 60)])
        return [rng.choice(BOUNDARY_IDS) if rng.random() < 0.2 else rng.randint(0, 50003)
                for _ in range(length)]

    return [(side(i), side(i + 1)) for i in range(count)]


def as_lists(pairs):
    return [(list(map(int, source)), list(map(int, target))) for source, target in pairs]


def header(length, cflag=0):
    return struct.pack("<II", MAGIC, (cflag << 29) | length)


def reference_record(source, target):
    """Framing written out by hand from the specification, payload by the protobuf library."""
    record = Record()
    record.features["source"].int32_tensor.SetInParent()
    record.features["source"].int32_tensor.values.extend(source)
    record.features["target"].int32_tensor.SetInParent()
    record.features["target"].int32_tensor.values.extend(target)
    payload = record.SerializeToString(deterministic=True)
    return header(len(payload)) + payload + b"\0" * (-len(payload) % 4)


# --- schema -----------------------------------------------------------------------------------

def proto_fields():
    """{message: {field: number}} declared in record.proto (parsed with regular expressions)."""
    text = re.sub(r"//.*", "", open(PROTO_PATH, encoding="utf-8").read())
    fields = {}
    for name, body in re.findall(r"message\s+(\w+)\s*\{((?:[^{}]|\{[^{}]*\})*)\}", text):
        declared = re.findall(r"(?:^|[;{\s])(?:repeated\s+|optional\s+)?(?:map<[^>]+>|[\w.]+)\s+(\w+)\s*=\s*(\d+)", body)
        fields[name] = {field: int(number) for field, number in declared}
    return fields


def test_runtime_schema_matches_record_proto():
    declared = proto_fields()
    assert set(declared) == {"Float32Tensor", "Float64Tensor", "Int32Tensor", "Bytes", "Value", "Record"}
    for message, fields in declared.items():
        descriptor = POOL.FindMessageTypeByName(f"aialgs.data.{message}")
        assert {field.name: field.number for field in descriptor.fields} == fields, message
    tensor = POOL.FindMessageTypeByName("aialgs.data.Int32Tensor")
    assert tensor.fields_by_name["values"].type == tensor.fields_by_name["values"].TYPE_INT32
    assert tensor.fields_by_name["values"].GetOptions().packed
    record = POOL.FindMessageTypeByName("aialgs.data.Record")
    assert record.fields_by_name["features"].message_type.GetOptions().map_entry
    value = POOL.FindMessageTypeByName("aialgs.data.Value")
    assert [field.name for field in value.oneofs_by_name["value"].fields] == [
        "float32_tensor", "float64_tensor", "int32_tensor", "bytes"]


# --- writing ----------------------------------------------------------------------------------

def test_known_bytes_of_one_record():
    """Bytes worked out by hand from the specification for source [5, 300], target [7]."""
    source_entry = b"\x0a\x06source" + b"\x12\x07" + b"\x3a\x05" + b"\x0a\x03" + b"\x05\xac\x02"
    target_entry = b"\x0a\x06target" + b"\x12\x05" + b"\x3a\x03" + b"\x0a\x01" + b"\x07"
    payload = b"\x0a\x11" + source_entry + b"\x0a\x0f" + target_entry
    assert len(payload) == 36
    expected = bytes.fromhex("0a23d7ce") + bytes([36, 0, 0, 0]) + payload
    assert pairs_to_bytes([([5, 300], [7])]) == expected
    assert frame_record(encode_pair([5, 300], [7])) == expected
    odd = pairs_to_bytes([([5], [7])])           # 34-byte payload -> two zero bytes of padding
    assert struct.unpack_from("<I", odd, 4)[0] == 34 and odd.endswith(b"\x07\x00\x00") and len(odd) == 44


def test_vectorized_writer_is_byte_identical_to_protobuf_serialization():
    pairs = random_pairs(seed=1, count=1500) + [([], []), ([], [3]), (BOUNDARY_IDS, BOUNDARY_IDS[::-1])]
    expected = b"".join(reference_record(source, target) for source, target in pairs)
    assert pairs_to_bytes(pairs) == expected
    assert b"".join(frame_record(encode_pair(source, target)) for source, target in pairs) == expected


def test_encode_pair_parses_back_with_protobuf():
    record = Record.FromString(encode_pair([4, 5, 6], []))
    assert list(record.features["source"].int32_tensor.values) == [4, 5, 6]
    assert record.features["target"].WhichOneof("value") == "int32_tensor"
    assert list(record.features["target"].int32_tensor.values) == []


@pytest.mark.parametrize("bad", [[-1], [2 ** 31]])
def test_writers_reject_ids_outside_int32(bad):
    with pytest.raises(UserError, match="source id"):
        encode_pair(bad, [1])
    with pytest.raises(UserError, match="pair 1: target id"):
        pairs_to_bytes([([1], [2]), ([1], bad)])


def test_record_writer_names_the_bad_pair_by_its_overall_index():
    with pytest.raises(UserError, match="pair 10: source id -2"):
        with RecordWriter(io.BytesIO(), batch_size=4) as writer:
            for index in range(12):
                writer.write([4] if index != 10 else [-2], [5])


def test_record_writer_is_atomic(tmp_path):
    path = tmp_path / "out.rec"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with RecordWriter(path) as writer:
            writer.write([1], [2])
            raise RuntimeError("stop")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.rec"]


def test_record_writer_on_stream_and_path_agree(tmp_path):
    pairs = random_pairs(seed=2, count=300)
    stream = io.BytesIO()
    with RecordWriter(stream, batch_size=7) as writer:
        for source, target in pairs[:100]:
            writer.write(source, target)
        rest = pairs[100:]
        writer.write_batch([i for s, _ in rest for i in s], [len(s) for s, _ in rest],
                           [i for _, t in rest for i in t], [len(t) for _, t in rest])
    assert writer.count == 300
    with RecordWriter(tmp_path / "a.rec") as writer:
        for source, target in pairs:
            writer.write(source, target)
    assert stream.getvalue() == (tmp_path / "a.rec").read_bytes() == pairs_to_bytes(pairs)


# --- reading ----------------------------------------------------------------------------------

def test_round_trip_bytes_file_and_stream(tmp_path):
    pairs = random_pairs(seed=3, count=700, long_every=250)
    data = pairs_to_bytes(pairs)
    from_bytes = list(read_pairs_from_bytes(data))
    assert as_lists(from_bytes) == pairs
    assert all(a.dtype == np.int32 and b.dtype == np.int32 for a, b in from_bytes)
    path = tmp_path / "pairs.rec"
    path.write_bytes(data)
    assert as_lists(read_pairs(path)) == pairs
    assert count_records(path) == len(pairs)


def test_round_trip_through_a_pipe_without_seeking():
    pairs = random_pairs(seed=4, count=400, long_every=150)
    data = pairs_to_bytes(pairs)
    read_end, write_end = os.pipe()

    def feed():
        with os.fdopen(write_end, "wb", buffering=0) as out:
            for start in range(0, len(data), 4093):    # odd-sized writes split headers and payloads
                out.write(data[start:start + 4093])

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(read_end, "rb", buffering=0) as stream:
        got = as_lists(read_pairs_from_stream(stream, "fifo"))
    feeder.join()
    assert got == pairs


def test_missing_padding_at_the_very_end_is_tolerated():
    data = pairs_to_bytes([([4, 5], [6])])
    payload_length = struct.unpack_from("<I", data, 4)[0]
    assert as_lists(read_pairs_from_bytes(data[:8 + payload_length])) == [([4, 5], [6])]


def test_optional_target():
    record = Record()
    record.features["source"].int32_tensor.values.extend([4, 5])
    only_source = frame_record(record.SerializeToString())
    record.features["target"].SetInParent()         # a Value with no tensor
    empty_value = frame_record(record.SerializeToString())
    for data in (only_source, empty_value, pairs_to_bytes([([4, 5], [])])):
        assert as_lists(read_pairs_from_bytes(data, require_target=False)) == [([4, 5], [])]
    with pytest.raises(DataFormatError, match=r'features\["target"\] is missing'):
        list(read_pairs_from_bytes(only_source))


# --- continuation flags -----------------------------------------------------------------------

def record_with_magic_inside(source, target):
    """A valid Record payload holding the magic at four 4-byte aligned offsets (two adjacent)."""
    record = Record.FromString(encode_pair(source, target))
    record.label["blob"].bytes.value.append(b"x" * 64)
    start = record.SerializeToString(deterministic=True).index(b"x" * 64)
    aligned = [offset - start for offset in range(start, start + 60) if offset % 4 == 0]
    blob = bytearray(b"x" * 64)
    for offset in (aligned[0], aligned[1], aligned[5], aligned[-1]):
        blob[offset:offset + 4] = MAGIC_LE
    record.label["blob"].bytes.value[0] = bytes(blob)
    payload = record.SerializeToString(deterministic=True)
    assert payload.count(MAGIC_LE) == 4
    return payload


def parts_of(data):
    """(cflag, length) of each RecordIO part, walking the framing by hand."""
    parts, offset = [], 0
    while offset < len(data):
        magic, lrecord = struct.unpack_from("<II", data, offset)
        assert magic == MAGIC
        length = lrecord & ((1 << 29) - 1)
        parts.append((lrecord >> 29, length))
        offset += 8 + (length + 3) // 4 * 4
    return parts


def test_dmlc_style_split_records_are_joined():
    payload = record_with_magic_inside([4, 5, 6], [7, 8])
    split = frame_record(payload, split_magic=True)
    flags = [cflag for cflag, _ in parts_of(split)]
    assert flags == [1, 2, 2, 2, 3]
    assert MAGIC_LE not in split.replace(MAGIC_LE, b"", len(flags))      # magic only in the headers
    plain = pairs_to_bytes([([9], [10])])
    data = plain + split + plain
    assert as_lists(read_pairs_from_bytes(data)) == [([9], [10]), ([4, 5, 6], [7, 8]), ([9], [10])]


def test_split_record_with_empty_parts():
    """Magic at the very start of the payload gives an empty first part; reading joins it back."""
    data = header(0, cflag=1) + header(8, cflag=2) + b"abcdefgh" + header(0, cflag=3)
    joined = b"".join(part for part in _joined_payloads(data))
    assert joined == MAGIC_LE + b"abcdefgh" + MAGIC_LE
    payload = MAGIC_LE + b"\x0a\x04" + MAGIC_LE
    assert [flag for flag, _ in parts_of(frame_record(payload, split_magic=True))] == [1, 3]
    # a payload of a real Record whose tail is the magic: the last part is empty
    record = Record.FromString(encode_pair([4], [5]))
    record.label["m"].bytes.value.append(b"abc" + MAGIC_LE)
    whole = record.SerializeToString(deterministic=True)
    assert whole.endswith(MAGIC_LE) and len(whole) % 4 == 0
    split = frame_record(whole, split_magic=True)
    assert parts_of(split)[-1] == (3, 0)
    assert as_lists(read_pairs_from_bytes(split)) == [([4], [5])]


def _joined_payloads(data):
    from seq2seq.data.recordio_codec import _FrameReader, _iter_payloads
    return [payload for _, _, payload in _iter_payloads(_FrameReader(None, data), "test")]


def test_split_magic_without_magic_gives_one_plain_record():
    payload = encode_pair([4, 5], [6])
    assert frame_record(payload, split_magic=True) == frame_record(payload)


# --- corruption -------------------------------------------------------------------------------

def corruption_cases():
    good = pairs_to_bytes([([4, 5], [6]), ([7], [8, 9])])
    first = len(pairs_to_bytes([([4, 5], [6])]))
    second_length = struct.unpack_from("<I", good, first + 4)[0]

    def framed(record):
        return frame_record(record.SerializeToString())

    negative = Record()
    negative.features["source"].int32_tensor.values.extend([4, -3])
    negative.features["target"].int32_tensor.values.extend([5])
    no_source = Record()
    no_source.features["target"].int32_tensor.values.extend([5])
    float_target = Record()
    float_target.features["source"].int32_tensor.values.extend([4])
    float_target.features["target"].float32_tensor.values.extend([1.0])
    bad_magic = good[:first] + b"\x00\x00\x00\x00" + good[first + 4:]
    return [
        ("bad magic", bad_magic, first, 1, "bad RecordIO magic 0x00000000"),
        ("truncated header", good[:first + 5], first, 1, "truncated record header: 5 of 8 bytes"),
        ("truncated payload", good[:first + 8 + second_length - 3], first, 1,
         f"header announces {second_length} bytes, {second_length - 3} left"),
        ("unparsable protobuf", good[:first] + frame_record(b"\xff\xff\xff\xff"), first, 1,
         "not an aialgs.data.Record protobuf"),
        ("missing source", good[:first] + framed(no_source), first, 1, r'features\["source"\] is missing'),
        ("wrong tensor type", good[:first] + framed(float_target), first, 1,
         r'features\["target"\] holds float32_tensor'),
        ("negative id", good[:first] + framed(negative), first, 1,
         r'negative token id -3 at position 1'),
        ("middle part without start", good[:first] + header(4, cflag=2) + b"abcd", first, 1,
         "continuation flag 2 without a preceding part"),
        ("invalid flag", good[:first] + header(4, cflag=5) + b"abcd", first, 1, "invalid continuation flag 5"),
        ("unfinished split record", good[:first] + header(4, cflag=1) + b"abcd", first, 1,
         "ends inside a multi-part record"),
        ("whole record inside split record", good[:first] + header(4, cflag=1) + b"abcd" + good[:first],
         first + 12, 1, "continuation flag 0 inside a multi-part record"),
    ]


@pytest.mark.parametrize("name,data,offset,record,message", corruption_cases(),
                         ids=[case[0] for case in corruption_cases()])
def test_corruption_names_input_offset_and_record(tmp_path, name, data, offset, record, message):
    with pytest.raises(DataFormatError, match=message) as caught:
        list(read_pairs_from_bytes(data, name="body"))
    error = caught.value
    assert (error.source, error.offset, error.record) == ("body", offset, record)
    assert f"body, record {record}, byte offset {offset}: " in str(error)
    path = tmp_path / "corrupt.rec"
    path.write_bytes(data)
    good_before = []
    with pytest.raises(DataFormatError) as caught:
        for pair in read_pairs(path):
            good_before.append(pair)
    assert caught.value.source == str(path) and caught.value.offset == offset
    assert as_lists(good_before) == [([4, 5], [6])]     # records before the damage still arrive


def test_reader_reports_the_right_record_far_into_a_file():
    pairs = random_pairs(seed=5, count=2000)
    data = pairs_to_bytes(pairs)
    offsets = [0]
    for source, target in pairs:
        offsets.append(offsets[-1] + len(pairs_to_bytes([(source, target)])))
    broken = bytearray(data)
    broken[offsets[1234]:offsets[1234] + 4] = b"\x01\x02\x03\x04"
    with pytest.raises(DataFormatError) as caught:
        list(read_pairs_from_bytes(bytes(broken)))
    assert (caught.value.record, caught.value.offset) == (1234, offsets[1234])


def test_empty_input_has_no_records():
    assert list(read_pairs_from_bytes(b"")) == []


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot open RecordIO file"):
        list(read_pairs(tmp_path / "absent.rec"))


def test_record_size_limit():
    with pytest.raises(UserError, match="exceeds the RecordIO limit"):
        frame_record(b"\0" * (recordio_batch.MAX_RECORD_LENGTH + 1))
