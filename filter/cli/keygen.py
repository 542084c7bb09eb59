"""`vtx keygen`: make the Ed25519 key pair that signs manifests (`filter.outputs.signing_keys`)."""

from __future__ import annotations

from pathlib import Path

import click

from filter.cli.output import echo
from filter.outputs.signing_keys import SIGNING_KEY_ENV, generate

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("keygen")
@click.option(
    "--out",
    "prefix",
    metavar="PREFIX",
    type=_FILE,
    default=None,
    help="Write the signing key to PREFIX.key and the public key to PREFIX.pub.",
)
@click.option(
    "--signing-key",
    "signing_key",
    type=_FILE,
    default=None,
    help="Where to write the signing (private) key, instead of --out.",
)
@click.option(
    "--public-key",
    "public_key",
    type=_FILE,
    default=None,
    help="Where to write the public key, instead of --out.",
)
def command(prefix: Path | None, signing_key: Path | None, public_key: Path | None) -> None:
    """Make a key pair for signing manifests: the signing key (PEM PKCS8, mode 0600) for
    `vtx split --signing-key`, and the public key (PEM, 0644) for receivers, who check with
    `vtx verify --public-key`. Never overwrites a file. Prints the key id."""
    if prefix is not None and (signing_key is not None or public_key is not None):
        raise click.UsageError("give --out PREFIX, or --signing-key FILE and --public-key FILE")
    if prefix is not None:
        signing_key = prefix.with_name(prefix.name + ".key")
        public_key = prefix.with_name(prefix.name + ".pub")
    if signing_key is None or public_key is None:
        raise click.UsageError("give --out PREFIX, or --signing-key FILE and --public-key FILE")
    key_id = generate(signing_key, public_key)
    echo(f"key id {key_id}")
    echo(
        f"  signing key: {signing_key} (secret: vtx split --signing-key, or "
        f"{SIGNING_KEY_ENV}; not the token key)"
    )
    echo(f"  public key:  {public_key} (for receivers: vtx verify --public-key)")
