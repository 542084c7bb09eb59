"""Encodes the telemetry stream: one chunk of drawn values into ``Envelope`` messages' bytes.

In: the shipped ``vtx.telemetry.v1.Envelope`` schema (:class:`Wire` reads its tags and the
``Field`` enum's key numbers), a :class:`benchmarks.telemetry_values.Fleet` and a tick range.
Out: :func:`encode_chunk`, the varint-length-delimited bytes of the chunk's messages and
their entry count. Each key's entries are encoded column-wise into the wire format
(:mod:`benchmarks.protobuf_wire`), string and door values once per vocabulary item with the
protobuf API, and the messages assembled by one gather over those byte matrices: no Python
object per message. The output is canonical (parsing and serialising a message gives its
bytes back), which :func:`benchmarks.generate_protobuf.check` verifies.
"""

from __future__ import annotations

import numpy as np
from google.protobuf import message_factory

from benchmarks.protobuf_parse import ENVELOPE, message_class
from benchmarks.protobuf_wire import (
    U8,
    Rows,
    const,
    field,
    fixed,
    gather,
    hcat,
    tag,
    varint_bytes,
    varints,
)
from benchmarks.telemetry_keys import KEYS, Key
from benchmarks.telemetry_values import START_S, Fleet, draw_signals

#: Share of messages marked ``is_resend``.
RESEND_RATE = 0.002


class Wire:
    """Tags and key numbers of the shipped schema, and encoders of each value member."""

    def __init__(self) -> None:
        envelope = message_class(ENVELOPE)
        self.envelope = envelope
        env = envelope.DESCRIPTOR
        datum = env.fields_by_name["data"].message_type
        value = datum.fields_by_name["value"].message_type
        location = value.fields_by_name["location_value"].message_type
        self.value_class = message_factory.GetMessageClass(value)
        self.data, self.created_at = tag(env, "data"), tag(env, "created_at")
        self.vin, self.resend = tag(env, "vin"), tag(env, "is_resend") + b"\x01"
        timestamp = env.fields_by_name["created_at"].message_type
        self.seconds, self.nanos = tag(timestamp, "seconds"), tag(timestamp, "nanos")
        self.key, self.value = tag(datum, "key"), tag(datum, "value")
        self.members = {
            "float": tag(value, "float_value"),
            "double": tag(value, "double_value"),
            "int": tag(value, "int_value"),
            "long": tag(value, "long_value"),
            "bool": tag(value, "boolean_value"),
            "location": tag(value, "location_value"),
        }
        self.latitude, self.longitude = tag(location, "latitude"), tag(location, "longitude")
        enum = datum.fields_by_name["key"].enum_type
        self.numbers = {
            k.name: enum.values_by_name[k.name].number if k.name in enum.values_by_name
            else int(k.name)
            for k in KEYS
        }  # fmt: skip

    def value_body(self, key: Key, values: np.ndarray) -> Rows:
        """Encode the ``Value`` messages of ``values`` (vocabulary keys: of the vocabulary)."""
        n = len(values)
        if key.kind in ("string", "doors"):
            encoded = [self._vocab_value(key.kind, item) for item in key.vocab]
            width = max(len(e) for e in encoded)
            matrix = np.zeros((len(encoded), width), dtype=U8)
            for i, e in enumerate(encoded):
                matrix[i, : len(e)] = np.frombuffer(e, dtype=U8)
            return matrix, np.array([len(e) for e in encoded], dtype=np.int64)
        member = const(self.members[key.kind], n)
        if key.kind == "float":
            return hcat([member, fixed(values, "<f4")])
        if key.kind == "double":
            return hcat([member, fixed(values, "<f8")])
        if key.kind in ("int", "long"):
            return hcat([member, varints(values)])
        if key.kind == "bool":
            return hcat([member, (values.astype(U8)[:, None], np.ones(n, dtype=np.int64))])
        # location: (n, 2) latitude, longitude; both non-zero, so proto3 writes both.
        body = hcat([
            const(self.latitude, n), fixed(values[:, 0], "<f8"),
            const(self.longitude, n), fixed(values[:, 1], "<f8"),
        ])  # fmt: skip
        return field(self.members["location"], body)

    def _vocab_value(self, kind: str, item: str | tuple[str, ...]) -> bytes:
        """One ``Value`` with a string or a set of open doors, encoded by the protobuf API."""
        value = self.value_class()
        if kind == "string":
            assert isinstance(item, str)
            value.string_value = item
        else:
            value.door_value.SetInParent()  # all doors shut is an empty, but present, message
            for door in item:
                setattr(value.door_value, door, True)
        return value.SerializeToString()

    def entries(self, key: Key, values: np.ndarray) -> Rows:
        """Encode whole ``data`` entries (envelope tag, length, ``Datum`` of key and value)."""
        body = self.value_body(key, values)
        n = len(body[1])
        datum = hcat([
            const(self.key + varint_bytes(self.numbers[key.name]), n),
            field(self.value, body),
        ])  # fmt: skip
        return field(self.data, datum)


def encode_chunk(
    wire: Wire, fleet: Fleet, vins: Rows, tick0: int, ticks: int, keep: int
) -> tuple[np.ndarray, int]:
    """Encode the first ``keep`` messages of ticks ``[tick0, tick0 + ticks)``.

    ``vins`` holds every vehicle's encoded ``vin`` field, one row per vehicle. Returns the
    stream bytes (length prefixes included) and the number of entries.
    """
    rng, v = fleet.rng, fleet.vehicles
    signals = draw_signals(fleet, tick0, ticks)
    vehicle = np.tile(np.arange(v), ticks)[:keep]
    carried = rng.random((ticks * v, len(KEYS)))[:keep] < np.array([k.p for k in KEYS])
    resend = rng.random(ticks * v)[:keep] < RESEND_RATE

    # Pieces of message i, in order: length prefix, entries (KEYS order), created_at, vin,
    # is_resend. Each piece is a row of one byte matrix; absent pieces have length 0.
    pieces = len(KEYS) + 4
    matrices: list[np.ndarray] = []
    starts = np.zeros((keep, pieces), dtype=np.int64)
    lengths = np.zeros((keep, pieces), dtype=np.int64)
    rows: list[tuple[int, np.ndarray | slice, np.ndarray]] = []  # (piece, messages, row index)

    def add(piece: int, encoded: Rows, messages: np.ndarray | slice, row: np.ndarray) -> None:
        matrices.append(np.ascontiguousarray(encoded[0]))
        lengths[messages, piece] = encoded[1][row]
        rows.append((piece, messages, row))

    for j, key in enumerate(KEYS):
        sel = np.flatnonzero(carried[:, j])
        if not len(sel):  # a rare key in a small chunk
            continue
        values = signals[key.name].reshape(ticks * v, *signals[key.name].shape[2:])[:keep][sel]
        if key.kind in ("string", "doors"):
            add(1 + j, wire.entries(key, values), sel, values.astype(np.int64))
        else:
            add(1 + j, wire.entries(key, values), sel, np.arange(len(sel)))
    seconds = START_S + tick0 + np.arange(keep) // v
    nanos = fleet.millis[vehicle] * 1_000_000
    # nanos 0 is not written (proto3): those rows are cut before the nanos tag.
    timestamp = hcat([const(wire.seconds, keep), varints(seconds)])
    with_nanos = hcat([timestamp, const(wire.nanos, keep), varints(nanos)])
    timestamp = (with_nanos[0], np.where(nanos > 0, with_nanos[1], timestamp[1]))
    add(1 + len(KEYS), field(wire.created_at, timestamp), slice(None), np.arange(keep))
    add(2 + len(KEYS), vins, slice(None), vehicle)
    resend_rows = np.flatnonzero(resend)
    add(3 + len(KEYS), const(wire.resend, 1), resend_rows, np.zeros(len(resend_rows), np.int64))
    add(0, varints(lengths[:, 1:].sum(axis=1)), slice(None), np.arange(keep))

    bases = np.cumsum([0] + [m.size for m in matrices])
    for (piece, messages, row), matrix, base in zip(rows, matrices, bases[:-1], strict=True):
        starts[messages, piece] = base + row * matrix.shape[1]
    source = np.concatenate([m.ravel() for m in matrices])
    data = gather(source, starts.ravel(), lengths.ravel())
    return data, int(carried.sum())
