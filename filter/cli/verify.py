"""`vtx verify`: check a published output against its manifest, catalogue and counterpart.

Clean: one summary line on stdout, exit 0. An onshore output checked alone that is clean but
whose export half is not where its manifest says (a half-published pair): the summary, then
``vtx: verify: ...: export half missing ...`` on stderr, exit 4.
Failures: one line ``vtx: verify: ...`` per failure on stderr (no summary), exit 3. An output
that cannot be checked at all (not a directory, a catalogue that does not load) is an ordinary
error: ``vtx: error: ...``, exit 1 or 2; so is a `--public-key` file that is not an Ed25519
public key (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import click

from filter.cli.options import catalogue_option, memory_budget_option
from filter.cli.output import echo
from filter.errors import EXIT_HALF_PAIR, EXIT_OK, EXIT_VERIFY
from filter.memory_budget import MemoryBudget
from filter.outputs.signing import key_id, signed_by
from filter.outputs.signing_keys import load_public_key

_DIR = click.Path(file_okay=False, path_type=Path)


@click.command("verify")
@click.argument("output_dir", type=_DIR)
@click.option("--onshore", "onshore_dir", type=_DIR, default=None,
              help="The onshore counterpart of the export OUTPUT_DIR: also check it and "
                   "reconcile the two.")
@catalogue_option
@click.option("--public-key", "public_key_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="Ed25519 public key (vtx keygen): every manifest must be signed by it.")
@click.option("--require-signature", is_flag=True,
              help="Fail unsigned outputs (without --public-key, who signed is not checked).")
@memory_budget_option
def command(
    output_dir: Path,
    onshore_dir: Path | None,
    catalogue_path: Path | None,
    public_key_file: Path | None,
    require_signature: bool,
    memory_budget: MemoryBudget,
) -> int:
    """Check OUTPUT_DIR, an export or (alone) an onshore output: hashes, row counts and files
    against its manifest, and what the manifest claims; of an export, every column against the
    catalogue and scenario and every string value against the detectors; with --onshore, no
    onshore VIN in the export and both sides reconciling; with --public-key, that each
    manifest is signed by that key. Exit 3 on failures; an onshore output alone whose export
    half is missing (a half-published pair): exit 4."""
    from filter.audit.verify import verify_output  # only for this command: it loads protobuf

    public_key = load_public_key(public_key_file) if public_key_file is not None else None
    report = verify_output(output_dir, onshore_dir, catalogue_path, public_key=public_key,
                           require_signature=require_signature, memory_budget=memory_budget)
    if report.ok:
        if public_key is not None:
            note = f"; signed by key {key_id(public_key)}"
        elif (claimed := signed_by(output_dir)) is not None:
            note = f"; signature names key {claimed} (not checked: no --public-key)"
        else:
            note = ""
        echo(report.summary() + note)
        if report.missing_half is not None:
            echo(f"vtx: verify: {report.onshore_dir}: {report.missing_half}", err=True)
            return EXIT_HALF_PAIR
        return EXIT_OK
    for failure in report.failures:
        echo(f"vtx: verify: {failure}", err=True)
    return EXIT_VERIFY
