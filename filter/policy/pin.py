"""Which catalogue a run uses: one given as an object, read from a path, or the shipped one;
and the check that it is the version a reviewer pinned.

In: a `Catalogue`, a path or None; a pinned SHA-256 or None.
Out: the `Catalogue`.
May fail: `CatalogueError` (a file that does not validate; a catalogue that is not the pinned one).
"""

from __future__ import annotations

from pathlib import Path

from filter.errors import CatalogueError
from filter.policy.catalogue import Catalogue
from filter.policy.catalogue_loading import load_catalogue


def resolve_catalogue(catalogue: Catalogue | str | Path | None) -> Catalogue:
    """A `Catalogue` from an object, a file path, or None for the shipped default."""
    return catalogue if isinstance(catalogue, Catalogue) else load_catalogue(catalogue)


def check_pin(catalogue: Catalogue, sha256: str | None) -> None:
    """Refuse `catalogue` unless its SHA-256 is `sha256` (when one is given)."""
    if sha256 is not None and sha256.strip().lower() != catalogue.sha256:
        raise CatalogueError(
            [f"{catalogue.source}: catalogue sha256 is {catalogue.sha256}, "
             f"not the pinned {sha256.strip().lower()}"],
            hint="the catalogue changed since it was pinned; review it with `vtx catalogue diff`",
        )
