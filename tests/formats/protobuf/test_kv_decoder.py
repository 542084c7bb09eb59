"""The compiled key/value decoder (filter/formats/protobuf/kv_batches.py and its kv_* modules)
against the plain path.

The plain path (the protobuf runtime, `decoder="plain"`) is the reference: on every input, the
compiled path must give the same rows, the same batches' message counts, the same bad records
and the same errors.
"""

from __future__ import annotations

import struct
from pathlib import Path

import polars as pl
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.internal.encoder import _VarintBytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from filter import InputError
from filter.formats.protobuf import batches as protobuf_batches
from filter.formats.protobuf import kv_tables
from filter.formats.protobuf.descriptors import ProtoSchema, load_schema
from filter.formats.protobuf.framing import Framing
from filter.formats.protobuf.message_rows import key_value_schema
from tests.conftest import DATA

FieldProto = descriptor_pb2.FieldDescriptorProto


def delimited(*messages: bytes) -> bytes:
    return b"".join(_VarintBytes(len(m)) + m for m in messages)


@pytest.fixture(scope="module")
def payload() -> ProtoSchema:
    return load_schema(DATA / "fleet_test.binpb", "testfleet.Payload")


@pytest.fixture(scope="module")
def envelope() -> ProtoSchema:
    return load_schema(None, "vtx.telemetry.v1.Envelope")


def read(
    schema: ProtoSchema, path: Path, decoder: protobuf_batches.Decoder,
    framing: Framing = "delimited", batch_size: int = 4,
) -> tuple[pl.DataFrame, int, list[tuple[int, int, str, bytes]]]:
    bad: list[tuple[int, int, str, bytes]] = []
    batches = list(protobuf_batches.iter_batches(
        schema, path, framing, batch_size=batch_size, decoder=decoder,
        on_bad=lambda r: bad.append((r.index, r.offset, r.reason, bytes(r.data))),
    ))
    rows = pl.concat([b.rows for b in batches]) if batches else key_value_schema(
        schema).to_frame()
    return rows, sum(b.messages for b in batches), bad


def assert_same(schema: ProtoSchema, path: Path, framing: Framing = "delimited",
                batch_size: int = 4) -> pl.DataFrame:
    compiled = read(schema, path, "auto", framing, batch_size)
    plain = read(schema, path, "plain", framing, batch_size)
    assert_frame_equal(compiled[0], plain[0])
    assert compiled[1:] == plain[1:]
    try:
        plain_error = list(protobuf_batches.iter_batches(
            schema, path, framing, decoder="plain")) and None
    except InputError as exc:
        plain_error = exc.message
    try:
        compiled_error = list(protobuf_batches.iter_batches(schema, path, framing)) and None
    except InputError as exc:
        compiled_error = exc.message
    assert compiled_error == plain_error
    return compiled[0]


def full_payload(schema: ProtoSchema, vin: str, seconds: int = 1_790_000_000) -> bytes:
    msg = schema.message_class(vin=vin, is_resend=True)
    msg.created_at.seconds = seconds
    msg.created_at.nanos = 123_456_789
    entry = msg.data.add(key=21)
    entry.value.location_value.latitude = 31.2304
    entry.value.location_value.longitude = 121.4737
    msg.data.add(key=8).value.double_value = 80.5
    msg.data.add(key=10).value.shift_state_value = 5
    msg.data.add(key=10).value.shift_state_value = 77  # a number the enum lacks
    msg.data.add(key=64).value.string_value = "车 ✓"
    msg.data.add(key=999).value.int_value = -7
    msg.data.add(key=4).value.float_value = 1.1
    msg.data.add(key=5).value.long_value = -(2**62)
    msg.data.add(key=5).value.boolean_value = True
    msg.data.add(key=23)  # no value
    msg.data.add(key=21).value.location_value.SetInParent()  # an empty message member
    return msg.SerializeToString()


def test_compiles_the_shipped_and_test_envelopes(payload, envelope) -> None:
    for schema in (payload, envelope):
        tables = kv_tables.compile_tables(schema)
        assert tables is not None
        assert tables.entries_number == 1 and tables.key_number == 1
    assert kv_tables.compile_tables(load_schema(None, "vtx.telemetry.v1.Record")) is None


def test_same_rows_as_the_plain_path(payload, tmp_path: Path) -> None:
    path = tmp_path / "s.bin"
    empty = payload.message_class(vin="no entries").SerializeToString()
    path.write_bytes(delimited(*[full_payload(payload, f"V{i}", i) for i in range(9)], empty, b""))
    rows = assert_same(payload, path)
    assert rows.height == 9 * 11
    first = rows.filter(pl.col("message_index") == 0)
    assert first["key"].to_list()[:6] == ["Location", "Soc", "Gear", "Gear", "VehicleName", "999"]
    assert first["value_enum"].to_list()[2:4] == ["ShiftStateD", "77"]
    assert first["value_location_value"][-1] == {"latitude": 0.0, "longitude": 0.0}


def test_shipped_envelope_members(envelope, tmp_path: Path) -> None:
    msg = envelope.message_class(vin="LSV1")
    msg.data.add(key=4).value.door_value.driver_front = True
    time = msg.data.add(key=5).value.time_value
    time.hour, time.minute = 23, 59
    msg.data.add(key=6).value.tire_location_value.rear_right = True
    msg.data.add(key=7).value.invalid = True
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(msg.SerializeToString()) * 3)
    rows = assert_same(envelope, path, batch_size=2)
    assert rows["value_time_value"][1] == {"hour": 23, "minute": 59, "second": 0}
    assert rows["created_at"].null_count() == rows.height


@pytest.mark.parametrize(
    "extra",
    [
        b"\xa8\x06\x2a",  # envelope: unknown field 101
        b"\x0a\x03\xa8\x06\x01",  # an entry with unknown field 101
        b"\x0a\x05\x12\x03\xa8\x06\x01",  # a value with unknown field 101
        b"\x0a\x08\x12\x06\x3a\x04\xa8\x06\x01\x00"[:-1],  # a location with unknown field 101
        b"\x0a\x02\x08\x80"[:-1] + b"\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # key past int32
        b"\x1d\x00\x00\x00\x00",  # vin (field 3) with the wrong wire type
        b"\x0a\x06\x12\x02\x10\x01\x12\x00",  # a value sent twice (merged)
        b"\x0a\x0a\x12\x08\x3a\x02\x09\x01\x3a\x02\x11\x02",  # a location twice (merged)
        b"\x12\x02\x08\x05",  # a second created_at (merged)
        b"\x0a\x04\x12\x02\x0a\x00",  # an empty string value
        b"\x1a\x02\xc3\x28",  # an invalid UTF-8 vin
        b"\x0a\x06\x12\x04\x0a\x02\xed\xa0",  # an invalid UTF-8 string value
        b"\x0a\x03\x12\x01\x0a",  # a value cut short
        b"\x0b\x0c",  # a group (wire types 3 and 4)
        b"\x00\x01",  # field number 0
    ],
)
def test_wire_oddities_give_the_plain_rows_or_error(payload, tmp_path: Path, extra: bytes) -> None:
    good = full_payload(payload, "LSV1")
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(good, good + extra, good))
    assert_same(payload, path, batch_size=2)


def test_a_string_cut_inside_a_character_is_invalid(payload, tmp_path: Path) -> None:
    # The VIN is the envelope's last field and ends with the first byte of a two-byte
    # character; the next message is long, so its length prefix starts with a byte that
    # would pass for the missing continuation byte.
    cut = b"\x1a\x01\xc3"  # vin = b"\xc3"
    long = full_payload(payload, "L" * 120)
    assert len(long) >= 128
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(cut, long))
    assert_same(payload, path)


@pytest.mark.parametrize(
    "tail",
    [b"\x05abc", b"\x80", b"\xff" * 11, b"\xff\xff\xff\xff\x0f", b"\x0a\xff\xff"],
)
def test_framing_errors_after_good_messages(payload, tmp_path: Path, tail: bytes) -> None:
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(*[full_payload(payload, f"V{i}") for i in range(5)]) + tail)
    assert_same(payload, path, batch_size=2)


def test_single_message_files_and_empty_files(payload, tmp_path: Path) -> None:
    one = tmp_path / "one.bin"
    one.write_bytes(full_payload(payload, "LSV1"))
    assert assert_same(payload, one, framing="single").height == 11
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert assert_same(payload, empty).height == 0
    assert assert_same(payload, empty, framing="single").height == 0


def test_every_scalar_type_as_member_and_leaf(tmp_path: Path) -> None:
    schema = scalar_schema(tmp_path)
    assert kv_tables.compile_tables(schema) is not None
    messages = []
    for sign in (1, -1):
        msg = schema.message_class(vin="V", seconds=sign * 5, fixed=7, count=sign * 3)
        leaf = msg.data.add(key=2).value.all
        for name, value in scalar_values(sign).items():
            msg.data.add(key=1).value.__setattr__(f"m_{name}", value)
            setattr(leaf, name, value)
        messages.append(msg.SerializeToString())
    messages.append(schema.message_class().SerializeToString())
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(*messages))
    rows = assert_same(schema, path, batch_size=2)
    assert rows["value_all"].drop_nulls().struct.field("s32").to_list() == [-(2**31), -(2**31)]


def test_key_names_far_outside_the_lookup_table(tmp_path: Path) -> None:
    # The compiled path names keys through a table of the numbers 0 to 4096; an enum value
    # beyond it (or negative) is named as the runtime names it, not spelled as digits.
    scalar_schema(tmp_path)
    files = descriptor_pb2.FileDescriptorSet.FromString((tmp_path / "kvtypes.binpb").read_bytes())
    files.file[0].enum_type[1].value.extend([
        descriptor_pb2.EnumValueDescriptorProto(name="Far", number=5000),
        descriptor_pb2.EnumValueDescriptorProto(name="Below", number=-3),
    ])
    (tmp_path / "far.binpb").write_bytes(files.SerializeToString())
    schema = load_schema(tmp_path / "far.binpb", "kvtypes.Env")
    msg = schema.message_class(vin="V")
    for key in (5000, -3, 1):
        msg.data.add(key=key).value.m_s32 = 3
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(msg.SerializeToString()))
    rows = assert_same(schema, path)
    assert rows["key"].to_list() == ["Far", "Below", "Scalar"]


def test_schemas_it_cannot_compile_use_the_plain_path(tmp_path: Path) -> None:
    schema = scalar_schema(tmp_path, extra_envelope=FieldProto(
        name="tags", number=9, type=FieldProto.TYPE_STRING, label=FieldProto.LABEL_REPEATED))
    assert kv_tables.compile_tables(schema) is None
    path = tmp_path / "s.bin"
    msg = schema.message_class(vin="V", tags=["a", "b"])
    msg.data.add(key=1).value.m_s32 = 3
    path.write_bytes(delimited(msg.SerializeToString()))
    assert assert_same(schema, path)["tags"].to_list() == [["a", "b"]]


def scalar_values(sign: int) -> dict[str, object]:
    return {
        "i32": sign * 2**31 if sign < 0 else 2**31 - 1, "i64": sign * 2**62, "u32": 2**32 - 1,
        "u64": 2**63 - 1, "s32": -(2**31), "s64": sign * 2**63 if sign < 0 else 2**63 - 1,
        "f32": 4_000_000_000, "f64": 2**64 - 1, "sf32": sign * 5, "sf64": sign * 6,
        "flt": struct.unpack("f", struct.pack("f", sign * 1.1))[0], "dbl": sign * 2.5e300,
        "flag": sign > 0, "text": "ü" * (sign + 2), "blob": b"\x00\xff" * (sign + 2),
        "color": 1 if sign > 0 else 3,
    }


_TYPES = {
    "i32": FieldProto.TYPE_INT32, "i64": FieldProto.TYPE_INT64, "u32": FieldProto.TYPE_UINT32,
    "u64": FieldProto.TYPE_UINT64, "s32": FieldProto.TYPE_SINT32, "s64": FieldProto.TYPE_SINT64,
    "f32": FieldProto.TYPE_FIXED32, "f64": FieldProto.TYPE_FIXED64,
    "sf32": FieldProto.TYPE_SFIXED32, "sf64": FieldProto.TYPE_SFIXED64,
    "flt": FieldProto.TYPE_FLOAT, "dbl": FieldProto.TYPE_DOUBLE, "flag": FieldProto.TYPE_BOOL,
    "text": FieldProto.TYPE_STRING, "blob": FieldProto.TYPE_BYTES, "color": FieldProto.TYPE_ENUM,
}


def scalar_schema(directory: Path, extra_envelope: FieldProto | None = None) -> ProtoSchema:
    """A proto2 envelope (every field has presence) with a member of every scalar type, and a
    message member whose leaves are every scalar type; its envelope has scalar fields too."""
    file = descriptor_pb2.FileDescriptorProto(name="kvtypes.proto", package="kvtypes",
                                              syntax="proto2")
    file.enum_type.add(name="Color").value.extend([
        descriptor_pb2.EnumValueDescriptorProto(name=n, number=i)
        for i, n in ((0, "NONE"), (1, "RED"), (3, "BLUE"))
    ])
    file.enum_type.add(name="Key").value.extend([
        descriptor_pb2.EnumValueDescriptorProto(name=n, number=i)
        for i, n in ((0, "K0"), (1, "Scalar"), (2, "Leaves"))
    ])
    optional = FieldProto.LABEL_OPTIONAL

    def field(name: str, number: int, kind: int, type_name: str = "") -> FieldProto:
        made = FieldProto(name=name, number=number, type=kind, label=optional, json_name=name)
        if type_name:
            made.type_name = type_name
        return made

    def scalars(prefix: str, first: int, oneof: bool) -> list[FieldProto]:
        out = []
        for i, (name, kind) in enumerate(_TYPES.items()):
            f = field(prefix + name, first + i, kind,
                      ".kvtypes.Color" if kind == FieldProto.TYPE_ENUM else "")
            if oneof:
                f.oneof_index = 0
            out.append(f)
        return out

    file.message_type.add(name="All").field.extend(scalars("", 1, False))
    value = file.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    value.field.extend(scalars("m_", 1, True))
    member = field("all", 40, FieldProto.TYPE_MESSAGE, ".kvtypes.All")
    member.oneof_index = 0
    value.field.append(member)
    entry = file.message_type.add(name="Entry")
    entry.field.extend([field("key", 1, FieldProto.TYPE_ENUM, ".kvtypes.Key"),
                        field("value", 2, FieldProto.TYPE_MESSAGE, ".kvtypes.Value")])
    env = file.message_type.add(name="Env")
    env.field.extend([
        FieldProto(name="data", number=1, type=FieldProto.TYPE_MESSAGE, type_name=".kvtypes.Entry",
                   label=FieldProto.LABEL_REPEATED, json_name="data"),
        field("vin", 2, FieldProto.TYPE_STRING), field("seconds", 3, FieldProto.TYPE_SINT64),
        field("fixed", 4, FieldProto.TYPE_FIXED32), field("count", 5, FieldProto.TYPE_INT32),
    ])
    if extra_envelope is not None:
        env.field.append(extra_envelope)
    files = descriptor_pb2.FileDescriptorSet(file=[file])
    path = directory / "kvtypes.binpb"
    path.write_bytes(files.SerializeToString())
    return load_schema(path, "kvtypes.Env")


# --- a property: random payloads, random byte damage --------------------------------------------

_KEYS = st.sampled_from([0, 4, 5, 8, 10, 21, 23, 64, 69, 248, 999, 70_000])
_MEMBER = st.one_of(
    st.none(),
    st.tuples(st.just("string_value"), st.text(max_size=6)),
    st.tuples(st.just("int_value"), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("long_value"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("float_value"), st.floats(width=32, allow_nan=False)),
    st.tuples(st.just("double_value"), st.floats(allow_nan=False)),
    st.tuples(st.just("boolean_value"), st.booleans()),
    st.tuples(st.just("shift_state_value"), st.sampled_from([0, 2, 5, 9])),
    st.tuples(st.just("location_value"), st.tuples(st.floats(allow_nan=False),
                                                    st.floats(allow_nan=False))),
)
_PAYLOAD = st.tuples(
    st.text(max_size=4), st.one_of(st.none(), st.integers(-(2**40), 2**40)), st.booleans(),
    st.lists(st.tuples(_KEYS, _MEMBER), max_size=6),
)


def encode(schema: ProtoSchema, spec: tuple) -> bytes:
    vin, seconds, resend, entries = spec
    msg = schema.message_class(vin=vin, is_resend=resend)
    if seconds is not None:
        msg.created_at.seconds = seconds
    for key, member in entries:
        entry = msg.data.add(key=key)
        if member is None:
            continue
        name, value = member
        if name == "location_value":
            entry.value.location_value.latitude, entry.value.location_value.longitude = value
        else:
            setattr(entry.value, name, value)
    return msg.SerializeToString()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(_PAYLOAD, max_size=6),
    damage=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=2),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_property_same_as_the_plain_path(payload, tmp_path: Path, specs, damage, cut) -> None:
    data = bytearray(delimited(*(encode(payload, s) for s in specs)))
    for where, byte in damage:
        if data:
            data[where % len(data)] = byte
    if cut is not None and data:
        data = data[: cut % len(data)]
    path = tmp_path / "p.bin"
    path.write_bytes(bytes(data))
    assert_same(payload, path, batch_size=3)


def _field(number: int, payload: bytes) -> bytes:
    return _VarintBytes(number << 3 | 2) + _VarintBytes(len(payload)) + payload


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strings=st.lists(st.binary(max_size=6), min_size=1, max_size=4), vin=st.binary(max_size=4),
       after=st.binary(max_size=3))
def test_property_any_string_bytes_as_the_runtime(payload, tmp_path: Path, strings, vin,
                                                  after) -> None:
    """Arbitrary bytes where strings go: the compiled path takes exactly the valid UTF-8."""
    entries = b"".join(_field(1, b"\x08\x40" + _field(2, _field(1, s))) for s in strings)
    message = entries + _field(3, vin)  # the VIN last, so whatever follows is `after`
    path = tmp_path / "s.bin"
    path.write_bytes(delimited(message) + after)
    assert_same(payload, path)
