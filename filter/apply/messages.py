"""The `ExportPlan` applied to plain protobuf messages, field by field, and the timestamp
action applied to protobuf timestamps.

In: one batch's raw messages, the plan, per message the exported string fields a detector hit,
the tokens of the VINs, the envelope's keys, and the two part files.
Out: a delimited stream of the input's type per side, message i of each from message i of the
batch (`formats.protobuf.writer` says what each side holds); `timestamp_cut`, the catalogue's
timestamp action as the stream writers take it.
May fail: `OSError` from the files (the caller reports it).

The export message is built anew from the plan's exported leaves (`formats.protobuf.writer.
known_copy`), never copied as input bytes; the onshore message is the input's, less what the
export holds exactly and in full.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import BinaryIO

import numpy as np
import polars as pl
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from filter.apply.columns import apply_action
from filter.apply.pseudonym import TokenMapping
from filter.formats.protobuf.descriptors import ProtoSchema
from filter.formats.protobuf.message_rows import SCALAR_TYPES, TIMESTAMP_TYPE, UNKNOWN_FIELDS
from filter.formats.protobuf.row_batches import RawMessages
from filter.formats.protobuf.writer import (
    StreamKeys,
    TimestampCut,
    copy_field,
    known_copy,
    write_delimited,
)
from filter.policy.catalogue import Action
from filter.policy.plan import ExportPlan, FieldDecision


def timestamp_cut(action: Action | None) -> TimestampCut | None:
    """The stream writers' form of the catalogue's timestamp `action` (None: none)."""
    return None if action is None else functools.partial(coarsened, action=action)


def write_plain_streams(
    schema: ProtoSchema,
    raw: RawMessages,
    export_plan: ExportPlan,
    detected: Mapping[int, set[str]],
    tokens: TokenMapping,
    keys: StreamKeys,
    export_out: BinaryIO,
    onshore_out: BinaryIO,
) -> None:
    """Plain messages: each field to the side its decision names (see the module doc).

    `detected` maps a message index to the exported string fields (paths) a detector hit in
    it: left out of the export, kept onshore. The export message is built anew: an empty
    message into which each exported leaf the message holds is copied (`known_copy` for
    what is a message), so nothing the plan does not export can be in it.
    """
    fields = [d for d in export_plan.fields if d.column != UNKNOWN_FIELDS]  # on the wire:
    # unknown fields are never exported and stay in the onshore copy
    exported = [d for d in fields if d.destination == "export"]
    withheld = [d for d in fields if d.destination == "onshore"
                and d.path != export_plan.vehicle_id_column]
    for index, data in raw.items():
        source = schema.message_class.FromString(data)
        export = schema.message_class()
        hits = detected.get(index, set())
        for decision in exported:
            if decision.path in hits:
                continue
            if _copy_leaf(source, export, decision) and decision.action is not None:
                _transform(export, decision, decision.action)
        for decision in withheld:  # no message left empty on a withheld leaf's path
            _clear(export, decision)
        _set_keys(source, export, keys, tokens)
        onshore = source
        for decision in exported:  # what the export holds exactly and in full leaves here
            if decision.action is None and decision.path not in hits:
                _clear(onshore, decision)
        write_delimited(export_out, export)
        write_delimited(onshore_out, onshore)


def _copy_leaf(source: Message, export: Message, decision: FieldDecision) -> bool:
    """Copy a decision's leaf from `source` into `export`, the messages above it with it
    (present where `source` has them); whether `source` holds the messages above it."""
    names = (decision.column, *decision.inner)
    held, into = source, export
    for name in names[:-1]:
        field = _by_json_name(held.DESCRIPTOR)[name]
        if not held.HasField(field.name):
            return False
        held, into = getattr(held, field.name), getattr(into, field.name)
        into.SetInParent()
    copy_field(held, into, _by_json_name(held.DESCRIPTOR)[names[-1]])
    return True


def _set_keys(source: Message, export: Message, keys: StreamKeys,
              tokens: TokenMapping) -> None:
    """The token in the export's vehicle identifier field (none without a token); the
    timestamp, coarsened."""
    token = tokens[getattr(source, keys.vin)]
    if token is not None:
        setattr(export, keys.vin, token)
    if source.HasField(keys.timestamp):
        stamp = getattr(export, keys.timestamp)
        stamp.SetInParent()
        known_copy(getattr(source, keys.timestamp), stamp)
        if keys.coarsen is not None:
            _coarsen(stamp, keys.coarsen)


def coarsened(
    seconds: np.ndarray, nanos: np.ndarray, action: Action
) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (seconds, nanos) as the Parquet path exports them: `apply_action` on
    microsecond UTC datetimes (so "1mo" and "15m" mean what they mean there)."""
    stamps = pl.Series(seconds * 1_000_000 + nanos // 1000).cast(pl.Datetime("us", "UTC"))
    cut = pl.select(apply_action(pl.lit(stamps), stamps.dtype, action)).to_series()
    micros = cut.cast(pl.Int64).to_numpy()
    return micros // 1_000_000, micros % 1_000_000 * 1000


def _coarsen(stamp: Message, cut: TimestampCut) -> None:
    seconds, nanos = cut(np.array([stamp.seconds]), np.array([stamp.nanos]))
    stamp.seconds, stamp.nanos = int(seconds[0]), int(nanos[0])


def _walk(message: Message, decision: FieldDecision) -> tuple[Message, FieldDescriptor] | None:
    """The message holding a decision's leaf, and the leaf's field (None when not set)."""
    names = (decision.column, *decision.inner)
    current = message
    for name in names[:-1]:
        field = _by_json_name(current.DESCRIPTOR)[name]
        if not current.HasField(field.name):
            return None
        current = getattr(current, field.name)
    return current, _by_json_name(current.DESCRIPTOR)[names[-1]]


def _clear(message: Message, decision: FieldDecision) -> None:
    """Clear a leaf; then the messages above it it leaves empty (an empty location message
    would still say that a location was sent)."""
    found = _walk(message, decision)
    if found is None:
        return
    found[0].ClearField(found[1].name)
    holders: list[tuple[Message, str]] = []
    current = message
    for name in (decision.column, *decision.inner)[:-1]:
        field = _by_json_name(current.DESCRIPTOR)[name]
        holders.append((current, field.name))
        current = getattr(current, field.name)
    for parent, name in reversed(holders):
        if getattr(parent, name).ByteSize():
            break
        parent.ClearField(name)


def _transform(message: Message, decision: FieldDecision, action: Action) -> None:
    """Apply `action` to a leaf as the column engine does to the same column."""
    found = _walk(message, decision)
    if found is None:
        return
    holder, field = found
    if field.message_type is not None and field.message_type.full_name == TIMESTAMP_TYPE:
        if holder.HasField(field.name):
            _coarsen(getattr(holder, field.name), functools.partial(coarsened, action=action))
        return
    dtype = SCALAR_TYPES.get(field.type)
    if field.message_type is None and not field.is_repeated and dtype is not None \
            and dtype.is_numeric():
        value = pl.Series([getattr(holder, field.name)], dtype=dtype)
        done = pl.select(apply_action(pl.lit(value), dtype, action)).item()
        setattr(holder, field.name, done)


_JSON_NAMES: dict[str, dict[str, FieldDescriptor]] = {}


def _by_json_name(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    found = _JSON_NAMES.get(descriptor.full_name)
    if found is None:
        found = _JSON_NAMES[descriptor.full_name] = {f.json_name: f for f in descriptor.fields}
    return found
