"""A protobuf batch, read as far as a plan needs: the message type loaded, the inputs found,
the plan compiled from the descriptor.

In: the request's inputs (files, globs; a directory is a topic dump of single-message files),
its `ProtobufInput` (message type, descriptor set, framing, key/value options), the catalogue,
scenario and options.
Out: a `ProtobufBatch`: the schema, the inputs, the `ExportPlan` (plain messages: per column;
key/value envelopes: the key columns, the entries decided as they arrive).
May fail: `InputError` (a descriptor set or input that cannot be read, no input),
`ScenarioError`, `UnclassifiedFieldsError` under ``on_unknown="fail"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filter.engines.protobuf_tally import Tally, manifest_plan
from filter.engines.request import ProtobufInput
from filter.errors import InputError, UnclassifiedFieldsError
from filter.files import argument_paths, check_named, entry_kind, found_special
from filter.formats.protobuf.descriptors import ProtoSchema, load_schema
from filter.formats.protobuf.framing import dump_files
from filter.formats.protobuf.message_rows import UNKNOWN_FIELDS, key_value_schema, polars_schema
from filter.policy.catalogue import Catalogue
from filter.policy.plan import ExportPlan, OnUnknown, plan


@dataclass(frozen=True)
class ProtobufBatch:
    """The protobuf inputs of a batch, their message type and their plan."""

    schema: ProtoSchema
    sources: list[Path]
    plan: ExportPlan
    options: ProtobufInput

    @property
    def paths(self) -> list[Path]:
        """The inputs (files and topic dumps), in order."""
        return self.sources


def protobuf_batch(
    inputs: Sequence[str | Path], options: ProtobufInput, catalogue: Catalogue, scenario: str,
    *, on_unknown: OnUnknown, origin: str | None,
) -> ProtobufBatch:
    """Load the message type, find the inputs, and plan, in that order: the first problem is
    the one shown."""
    schema = load_message_type(options)
    sources = expand_protobuf_inputs(inputs)
    decided = protobuf_plan(schema, catalogue, scenario, on_unknown, origin, options.namespace)
    return ProtobufBatch(schema, sources, decided, options)


def load_message_type(options: ProtobufInput) -> ProtoSchema:
    """The message type `options` names (on the driver, and again on each Ray worker)."""
    return load_schema(options.descriptor_set, options.message, kv_field=options.kv_field)


def protobuf_plan(
    schema: ProtoSchema,
    catalogue: Catalogue,
    scenario: str,
    on_unknown: OnUnknown,
    origin: str | None,
    namespace: str,
) -> ExportPlan:
    """The plan of the rows: per column for plain messages, the key columns for key/value.

    Under ``on_unknown="fail"`` the fields that no rule classifies (plain: columns; key/value:
    the names of the key enum) stop the run. Key numbers and fields the descriptor does not
    know can only be found in the data: `check_unknown` stops the run on them.
    """
    if schema.key_value is None:
        decided = plan(polars_schema(schema), catalogue, scenario, origin=origin)
        unknown = [p for p in decided.unclassified if p != UNKNOWN_FIELDS]
    else:
        decided = plan(key_value_schema(schema), catalogue, scenario, origin=origin)
        names = [v.name for v in schema.key_value.key.enum_type.values]
        unknown = [] if on_unknown != "fail" else [
            f"{namespace}.{n}" for n in names if catalogue.classify(f"{namespace}.{n}") is None]
    if on_unknown == "fail" and unknown:
        raise UnclassifiedFieldsError(unknown, catalogue.id)
    return decided


def expand_protobuf_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, glob patterns expanded, directories kept whole (topic dumps).

    As for Parquet (`filter.formats.parquet.inputs.expand_inputs`): an existing path is that path,
    a pattern is expanded once by vtx, no link vtx finds itself is followed (a pattern's
    match, a topic dump's entry: `formats.protobuf.framing.dump_files`), and a FIFO, device or
    socket is refused rather than read.
    """
    found: list[Path] = []
    for item in inputs:
        paths, matched = argument_paths(item)
        for path in paths:
            kind = entry_kind(path) if matched else check_named(path)
            if kind == "special":
                raise found_special(path, f"matched by pattern {str(item)!r}")
            if kind == "directory":
                dump_files(path)  # its links and special files refused before any read
            found.append(path)
    if not found:
        raise InputError("no input files given")
    return list(dict.fromkeys(p.resolve() for p in found))


def descriptor_plan(
    schema: ProtoSchema,
    catalogue: Catalogue,
    scenario: str,
    *,
    on_unknown: OnUnknown = "withhold",
    origin: str | None = None,
    namespace: str = "fleet",
) -> ExportPlan:
    """The decisions for a message type, from its descriptor alone (what `vtx explain` shows).

    Plain messages: one decision per field, as for Parquet columns. Key/value envelopes: the
    key columns, then one decision per name of the key enum (``<namespace>.<Key>``); key
    numbers the enum does not know are withheld when they arrive.
    """
    decided = protobuf_plan(schema, catalogue, scenario, on_unknown, origin, namespace)
    if schema.key_value is None:
        return decided
    tally = Tally()
    tally.keys.update(v.name for v in schema.key_value.key.enum_type.values)
    return manifest_plan(decided, schema, catalogue, scenario, namespace, tally)
