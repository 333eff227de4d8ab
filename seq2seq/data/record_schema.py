"""The `aialgs.data` protobuf schema (record.proto), built at runtime from a descriptor.

Building the descriptor here instead of shipping protoc output keeps the module independent of
the protoc version: it works with every protobuf runtime from 4.21 on, and uses the C (upb)
implementation when the runtime has it. `record.proto` next to this file is the human-readable
form of the same schema; a unit test checks that both declare the same fields.

Exports the message classes `Record`, `Value`, `Int32Tensor`, `Float32Tensor`, `Float64Tensor`
and `Bytes`.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "aialgs.data"

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (name, number, label, type, message type name or None, packed)
_TENSOR_TAIL = [
    ("keys", 2, _REPEATED, _F.TYPE_UINT64, None, True),
    ("shape", 3, _REPEATED, _F.TYPE_UINT64, None, True),
]
_MESSAGES = {
    "Float32Tensor": [("values", 1, _REPEATED, _F.TYPE_FLOAT, None, True)] + _TENSOR_TAIL,
    "Float64Tensor": [("values", 1, _REPEATED, _F.TYPE_DOUBLE, None, True)] + _TENSOR_TAIL,
    "Int32Tensor": [("values", 1, _REPEATED, _F.TYPE_INT32, None, True)] + _TENSOR_TAIL,
    "Bytes": [
        ("value", 1, _REPEATED, _F.TYPE_BYTES, None, False),
        ("content_type", 2, _OPTIONAL, _F.TYPE_STRING, None, False),
    ],
}
_VALUE_ONEOF = [
    ("float32_tensor", 2, "Float32Tensor"),
    ("float64_tensor", 3, "Float64Tensor"),
    ("int32_tensor", 7, "Int32Tensor"),
    ("bytes", 9, "Bytes"),
]
_RECORD_MAPS = [("features", 1), ("label", 2)]
_RECORD_STRINGS = [("uid", 3), ("metadata", 4), ("configuration", 5)]


def _add_field(message, name, number, label, field_type, type_name=None, packed=False):
    field = message.field.add(name=name, number=number, label=label, type=field_type)
    if type_name is not None:
        field.type_name = f".{PACKAGE}.{type_name}"
    if packed:
        field.options.packed = True
    return field


def _add_map_field(record, name, number):
    """A `map<string, Value>` field: a repeated nested `<Name>Entry` message with map_entry set."""
    entry_name = "".join(part.capitalize() for part in name.split("_")) + "Entry"
    entry = record.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _add_field(entry, "key", 1, _OPTIONAL, _F.TYPE_STRING)
    _add_field(entry, "value", 2, _OPTIONAL, _F.TYPE_MESSAGE, "Value")
    _add_field(record, name, number, _REPEATED, _F.TYPE_MESSAGE, f"Record.{entry_name}")


def build_file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto equivalent to record.proto."""
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="aialgs/data/record.proto", package=PACKAGE, syntax="proto2")
    file_proto.options.java_package = "com.amazonaws.aialgorithms.proto"
    file_proto.options.java_outer_classname = "RecordProtos"
    for message_name, fields in _MESSAGES.items():
        message = file_proto.message_type.add(name=message_name)
        for name, number, label, field_type, type_name, packed in fields:
            _add_field(message, name, number, label, field_type, type_name, packed)
    value = file_proto.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    for name, number, type_name in _VALUE_ONEOF:
        field = _add_field(value, name, number, _OPTIONAL, _F.TYPE_MESSAGE, type_name)
        field.oneof_index = 0
    record = file_proto.message_type.add(name="Record")
    for name, number in _RECORD_MAPS:
        _add_map_field(record, name, number)
    for name, number in _RECORD_STRINGS:
        _add_field(record, name, number, _OPTIONAL, _F.TYPE_STRING)
    return file_proto


def _message_class(pool, name):
    descriptor = pool.FindMessageTypeByName(f"{PACKAGE}.{name}")
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is not None:
        return get_class(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)  # protobuf < 4.22


# A private pool, so that another copy of this schema (e.g. the SageMaker SDK's) cannot clash.
POOL = descriptor_pool.DescriptorPool()
POOL.Add(build_file_descriptor_proto())

Record = _message_class(POOL, "Record")
Value = _message_class(POOL, "Value")
Int32Tensor = _message_class(POOL, "Int32Tensor")
Float32Tensor = _message_class(POOL, "Float32Tensor")
Float64Tensor = _message_class(POOL, "Float64Tensor")
Bytes = _message_class(POOL, "Bytes")
