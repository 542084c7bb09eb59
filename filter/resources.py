"""Where the shipped catalogues and .proto schemas are, installed or in a source checkout.

A wheel carries them under `filter/_shipped/` (see pyproject.toml); a source checkout or an
editable install has them at the top of the repository. Both are looked up, wheel first.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_CATALOGUE = "lingang-icv.toml"

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """The directory of shipped data `name` ("catalogue" or "proto")."""
    for candidate in (_PACKAGE_DIR / "_shipped" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"shipped {name!r} directory not found; is vtx installed completely?")


def default_catalogue_path() -> Path:
    """The shipped default catalogue file."""
    return shipped_dir("catalogue") / DEFAULT_CATALOGUE
