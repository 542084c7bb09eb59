"""A published output opened for a pipeline, once it verifies: a Polars `LazyFrame` over its
Parquet parts.

In: an output directory (an export, or an onshore output), and what `verify_output` takes: the
catalogue, a public key, whether a signature is required.
Out: a `LazyFrame` over exactly the part files its manifest lists, in order.
May fail: `UnverifiedOutputError` (exit 3) naming the first failure and how many there are;
`InputError` for a directory that is not an output, or whose parts are protobuf streams.

Verification reads every part (their SHA-256, footers and export strings); the frame then
reads them again when collected, as any scan does. A part changed in between is not caught:
verify again where that matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from filter.audit.verify import verify_output
from filter.errors import InputError, UnverifiedOutputError
from filter.outputs.manifest import MANIFEST_NAME, read_manifest
from filter.policy.catalogue import Catalogue

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def open_export(
    directory: str | Path,
    *,
    catalogue: Catalogue | str | Path | None = None,
    public_key: Ed25519PublicKey | str | Path | None = None,
    require_signature: bool = False,
) -> pl.LazyFrame:
    """A `LazyFrame` over the published output in `directory`, which must verify
    (`filter.verify_output`, this side alone); refused with `UnverifiedOutputError` if not."""
    folder = Path(directory)
    report = verify_output(folder, None, catalogue, public_key=public_key,
                           require_signature=require_signature)
    if not report.ok:
        first = report.failures[0]
        more = f" (and {len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        raise UnverifiedOutputError(f"{folder}: does not verify: {first}{more}",
                                    hint=f"vtx verify {folder} lists every failure")
    names = [f.name for f in read_manifest(folder).files]
    if any(not name.endswith(".parquet") for name in names):
        raise InputError(f"{folder}: its parts are not Parquet (protobuf output): read them "
                         "with the message type's generated classes")
    if not names:  # no part: the manifest file's schema, no rows
        return pl.scan_parquet(folder / MANIFEST_NAME)
    # glob=False: a part's name is that file (a name may hold `[`).
    return pl.scan_parquet([folder / name for name in names], glob=False)
