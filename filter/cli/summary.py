"""The end-of-run summary of a split, shared by `vtx split` and `vtx demo`."""

from __future__ import annotations

from collections import Counter

from filter.cli.output import echo
from filter.engines.request import SplitResult
from filter.outputs.signing import signed_by


def print_summary(result: SplitResult) -> None:
    """Rows, columns per class and destination, seconds, and where the outputs are."""
    plan = result.plan
    counts = Counter((f.destination, f.data_class) for f in plan.fields)
    echo(
        f"vtx split: {result.rows:,} rows, scenario {plan.scenario!r}, catalogue "
        f"{plan.catalogue_id} {plan.catalogue_version}, {result.seconds:.2f} s"
    )
    for destination in ("export", "onshore", "both"):
        parts = [f"{cls} {n}" for (dest, cls), n in sorted(counts.items()) if dest == destination]
        if parts:
            echo(f"  {destination:<8} fields: " + ", ".join(parts))
    entries = result.export_manifest.extra.entries
    if entries:  # key/value input: entries were routed one by one
        echo(
            f"  entries: {entries['entries']:,} read, {entries['exported']:,} exported; "
            f"unknown keys {entries['unknown_keys']:,}, unknown fields "
            f"{entries['unknown_fields']:,}, detector hits {entries['detected']:,}"
        )
    quarantined = result.onshore_manifest.extra.quarantined
    if quarantined:
        echo(f"  quarantined records: {len(quarantined):,} (onshore quarantine/)")
    echo(f"  export:  {result.export_dir}")
    echo(f"  onshore: {result.onshore_dir}")
    if (signer := signed_by(result.export_dir)) is not None:
        echo(f"  signed:  both manifests, key {signer}")
