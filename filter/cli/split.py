"""`vtx split`: split a batch into published export and onshore outputs."""

from __future__ import annotations

import dataclasses
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from filter.apply.pseudonym import load_key
from filter.cli.allocator import keep_freed_memory
from filter.cli.options import (
    catalogue_option,
    memory_budget_option,
    on_unknown_option,
    origin_option,
    scenario_option,
)
from filter.cli.summary import print_summary
from filter.engines.engine import Engine
from filter.engines.local import LocalEngine
from filter.engines.request import ProgressCallback, ProtobufInput, SplitRequest
from filter.engines.run import run
from filter.errors import InputError
from filter.memory_budget import MemoryBudget
from filter.outputs.signing_keys import SIGNING_KEY_ENV
from filter.policy.pin import resolve_catalogue

PARQUET_MAGIC = b"PAR1"


@click.command("split")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--export", "export_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to publish the export set in.")
@click.option("--onshore", "onshore_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to publish the onshore set in.")
@scenario_option
@origin_option
@catalogue_option
@click.option("--catalogue-sha256", metavar="HEX", default=None,
              help="Refuse any catalogue whose SHA-256 is not HEX (pin a reviewed version).")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Secret key for vehicle tokens (default: the file named by VTX_KEY_FILE).")
@click.option("--signing-key", "signing_key_file", envvar=SIGNING_KEY_ENV, show_envvar=True,
              type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Ed25519 key (vtx keygen) to sign both manifests with; not the token key. "
                   "Default: the file named by VTX_SIGNING_KEY_FILE; none: unsigned.")
@on_unknown_option
@click.option("--overwrite", is_flag=True, help="Replace non-empty targets.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display and no summary.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Split on this machine, or on a Ray cluster (needs the ray extra: "
                   "pip install '.[ray]').")
@click.option("--ray-address", metavar="ADDR", default=None,
              help="Ray cluster to run on ('auto': the one `ray start` runs here); "
                   "default a local one for the run.")
@click.option("--format", "input_format", type=click.Choice(["auto", "parquet", "protobuf"]),
              default="auto", show_default=True,
              help="Input format; auto: protobuf when --message is given, else Parquet.")
@click.option("--message", metavar="FULL.NAME", default=None,
              help="Protobuf message type of the input, e.g. vtx.telemetry.v1.Envelope.")
@click.option("--descriptor-set", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="FileDescriptorSet with the message type (protoc --include_imports -o); "
                   "default: vtx's shipped schemas.")
@click.option("--framing", type=click.Choice(["delimited", "single"]), default="delimited",
              show_default=True,
              help="Protobuf files: varint-length-delimited messages, or one message per file "
                   "(a directory input is a topic dump of single-message files).")
@click.option("--kv-field", metavar="NAME", default=None,
              help="The repeated entries field of a key/value envelope (default: detected).")
@click.option("--kv-namespace", metavar="NAME", default="fleet", show_default=True,
              help="Catalogue namespace of key/value keys: key K is classified as NAME.K.")
@click.option("--on-bad-record", type=click.Choice(["fail", "quarantine"]), default="fail",
              show_default=True,
              help="Protobuf: stop on a bad record, or keep it raw under the onshore "
                   "output's quarantine/ and go on.")
@click.option("--output-format", type=click.Choice(["parquet", "protobuf"]), default="parquet",
              show_default=True,
              help="Protobuf input: write each side as Parquet, or as a delimited stream of "
                   "the input's own message type (withheld entries and fields removed from "
                   "the export, the VIN replaced by the token).")
@click.option("--reencode", is_flag=True,
              help="Parquet input: decode and encode every column with Polars (zstd level 1) "
                   "instead of copying the columns a side holds unchanged as the input "
                   "encoded them.")
@memory_budget_option
def command(
    inputs: tuple[str, ...],
    export_dir: Path,
    onshore_dir: Path,
    scenario: str,
    origin: str | None,
    catalogue_path: Path | None,
    catalogue_sha256: str | None,
    key_file: Path | None,
    signing_key_file: Path | None,
    on_unknown: str,
    overwrite: bool,
    quiet: bool,
    engine: str,
    ray_address: str | None,
    input_format: str,
    message: str | None,
    descriptor_set: Path | None,
    framing: str,
    kv_field: str | None,
    kv_namespace: str,
    on_bad_record: str,
    output_format: str,
    reencode: bool,
    memory_budget: MemoryBudget,
) -> None:
    """Split INPUT files, directories or globs (Parquet or protobuf) into an export and an
    onshore set."""
    catalogue = resolve_catalogue(catalogue_path)
    if ray_address is not None and engine != "ray":
        raise click.UsageError("--ray-address needs --engine ray")
    protobuf = _is_protobuf(input_format, message, descriptor_set, inputs)
    if protobuf and message is None:
        raise click.UsageError("protobuf input needs --message FULL.NAME")
    if output_format == "protobuf" and not protobuf:
        raise click.UsageError("--output-format protobuf needs protobuf input")
    if reencode and (protobuf or engine == "ray"):
        raise click.UsageError("--reencode applies to Parquet input with --engine local")
    if output_format == "protobuf" and engine == "ray":
        raise click.UsageError("--output-format protobuf runs with --engine local only")
    protobuf_input = ProtobufInput(
        message, descriptor_set, framing, kv_field, kv_namespace,  # type: ignore[arg-type]
        on_bad_record,  # type: ignore[arg-type]
    ) if protobuf and message is not None else None
    request = SplitRequest(
        tuple(inputs), export_dir, onshore_dir, scenario, key=load_key(key_file),
        catalogue=catalogue, catalogue_sha256=catalogue_sha256, origin=origin,
        protobuf=protobuf_input, output_format=output_format,  # type: ignore[arg-type]
        on_unknown=on_unknown, overwrite=overwrite,  # type: ignore[arg-type]
        reencode=reencode, signing_key=signing_key_file, memory_budget=memory_budget,
    )
    runner: Engine = LocalEngine()
    if engine == "ray":
        from filter.engines.ray import RayEngine

        runner = RayEngine(ray_address)
    # What is loaded by now (modules, the catalogue) lasts as long as the process: frozen, it
    # is left out of the collections the run triggers, which would otherwise walk it each time.
    gc.freeze()
    keep_freed_memory()
    with _progress(enabled=not quiet and sys.stderr.isatty()) as progress:
        result = run(dataclasses.replace(request, progress=progress), runner)
    if not quiet:
        print_summary(result)


def _is_protobuf(
    input_format: str, message: str | None, descriptor_set: Path | None, inputs: tuple[str, ...]
) -> bool:
    """Resolve ``--format auto``: protobuf when a message type or descriptor set is named.

    Otherwise Parquet, checked by its magic bytes so that a protobuf file given without
    --message gets a message saying so rather than a Parquet error.
    """
    if input_format != "auto":
        return input_format == "protobuf"
    if message is not None or descriptor_set is not None:
        return True
    for item in inputs:
        path = Path(item)
        if path.is_file():
            with path.open("rb") as fh:
                if fh.read(4) != PARQUET_MAGIC:
                    raise InputError(
                        f"{path}: not a Parquet file (no PAR1 magic bytes)",
                        hint="for protobuf input give --message FULL.NAME "
                        "(and --descriptor-set FILE)",
                    )
    return False


@contextmanager
def _progress(*, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar on stderr, by rows, when stderr is a terminal."""
    if not enabled:
        yield None
        return
    # Imported here: a run without a terminal (pipelines, benchmarks) never loads rich.
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("splitting"), BarColumn(), TextColumn("{task.fields[rows]} rows"),
        TextColumn("file {task.fields[file]}"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )
    task = bar.add_task("split", total=None, rows="0", file="0")

    def update(done_files: int, files: int, done_rows: int, rows: int) -> None:
        bar.update(task, completed=done_rows, total=rows, rows=f"{done_rows:,}/{rows:,}",
                   file=f"{done_files}/{files}")

    with bar:
        yield update
