"""The audit report: one self-contained HTML page for a compliance reviewer.

In: published output directories (export and/or onshore; the two sides of a run are paired by
their manifests' `run_id`).
Out: an HTML document (inline CSS and SVG, no scripts, no external assets) with one section per
run: the inputs (path, rows, bytes, SHA-256 from the onshore manifest; rows only when just the
export is given), the key id, the catalogue (id, version, SHA-256), scenario and
origin, the outputs, a chart of what went where (columns per class, exported or kept onshore;
rows per output), the columns per class and destination with rule and reason, and the value
detectors' hits and moved values per field.
May fail: `InputError` for a directory that is not a published vtx output (no manifest, or a
manifest that cannot be read), or two outputs of the same side of one run.

Everything shown comes from the manifests, which hold no data values; the report reads no part
file, so it cannot show a value either. Every manifest string is HTML-escaped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from filter._version import __version__
from filter.audit.integrity import usable_manifest
from filter.errors import InputError, first_line, output_failed
from filter.files import replace_file
from filter.outputs.manifest import MANIFEST_NAME, stored_manifest
from filter.outputs.manifest_document import ColumnRecord, Manifest

_COLOURS = {"export": "#2e7d32", "onshore": "#c62828"}
_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       margin: 0; background: #f6f8fa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 8px; padding-top: 16px; border-top: 2px solid #d0d7de; }
h3 { font-size: 15px; margin: 22px 0 6px; }
p.lead { color: #57606a; margin: 0 0 12px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px;
         border-bottom: 1px solid #eaeef2; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
              overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.dest { display: inline-block; padding: 0 6px; border-radius: 9px; color: #fff; font-size: 12px; }
.dest-export { background: #2e7d32; }
.dest-onshore { background: #c62828; }
.dest-both { background: #57606a; }
.ok { color: #2e7d32; font-weight: 600; }
.bad { color: #c62828; font-weight: 600; }
.muted { color: #57606a; }
table.columns { table-layout: fixed; }
table.columns th:nth-child(1) { width: 24%; }
table.columns th:nth-child(2), table.columns th:nth-child(3) { width: 8%; }
table.columns th:nth-child(4) { width: 10%; }
table.columns th:nth-child(5) { width: 7%; }
table.columns td { overflow-wrap: anywhere; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; fill: #1f2328; }
"""


@dataclass(frozen=True)
class RunOutputs:
    """The manifests of one run: its export side, its onshore side, or both."""

    run_id: str
    export: Manifest | None
    onshore: Manifest | None
    export_dir: Path | None
    onshore_dir: Path | None

    @property
    def any(self) -> Manifest:
        """A manifest of the run (the export's when present): the facts both sides share."""
        found = self.export or self.onshore
        assert found is not None
        return found


def load_runs(directories: Iterable[str | Path]) -> list[RunOutputs]:
    """Read the manifests of `directories` and pair the sides of each run by `run_id`."""
    found: dict[str, dict[str, tuple[Manifest, Path]]] = {}
    for directory in directories:
        path = Path(directory).absolute()
        manifest = _read(path)
        sides = found.setdefault(manifest.run_id, {})
        side = manifest.destination
        if side in sides:
            raise InputError(f"{path}: a second {side} output of run {manifest.run_id} "
                             f"(the first is {sides[side][1]})")
        sides[side] = (manifest, path)
    runs = []
    for run_id, sides in found.items():
        export, onshore = sides.get("export"), sides.get("onshore")
        runs.append(RunOutputs(
            run_id=run_id,
            export=export[0] if export else None,
            onshore=onshore[0] if onshore else None,
            export_dir=export[1] if export else None,
            onshore_dir=onshore[1] if onshore else None,
        ))
    return runs


def _read(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    try:
        stored = stored_manifest(directory)
        path = stored.path
        document = stored.document()
    except FileNotFoundError:
        raise InputError(f"{directory}: no {MANIFEST_NAME}: not a published vtx output") from None
    except (OSError, ValueError) as exc:  # ValueError: not a manifest, not JSON or not UTF-8
        raise InputError(f"{path}: cannot be read: {first_line(exc)}") from None
    if isinstance(manifest := usable_manifest(document), str):
        raise InputError(f"{path}: {manifest}")
    return manifest


def render_report(runs: Sequence[RunOutputs]) -> str:
    """The HTML page for `runs`: a section per run."""
    sections = "\n".join(_run_section(run) for run in runs)
    index = ""
    if len(runs) > 1:
        items = "".join(f'<li><a href="#run-{escape(r.run_id)}">run <code>{escape(r.run_id)}'
                        f"</code></a> ({escape(r.any.scenario)})</li>" for r in runs)
        index = f"<ul>{items}</ul>"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>vtx audit report</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        "<h1>vtx audit report</h1>\n"
        f'<p class="lead">{len(runs)} run(s). Made by vtx {escape(__version__)} from the '
        "outputs' manifests only: the report reads no data file and shows no data value.</p>\n"
        f"{index}{sections}\n</main>\n</body>\n</html>\n"
    )


def write_report(directories: Iterable[str | Path], html_path: str | Path) -> list[RunOutputs]:
    """Render the report of `directories` into `html_path`; returns the runs it shows."""
    runs = load_runs(directories)
    target = Path(html_path)
    page = render_report(runs).encode("utf-8")
    try:
        # A new file of a random name, renamed over the target: a link planted at the target
        # or at a temporary name is never written through.
        replace_file(target, lambda out: out.write(page))
    except OSError as exc:
        raise output_failed(exc, target, "write report") from None
    return runs


def _run_section(run: RunOutputs) -> str:
    m = run.any
    cat = m.catalogue
    sides = [s for s, man in (("export", run.export), ("onshore", run.onshore)) if man]
    missing = ({"export", "onshore"} - set(sides))
    note = (f'<p class="bad">Only the {sides[0]} side was given: the {missing.pop()} side\'s '
            "columns are not shown.</p>") if missing else ""
    facts = _facts([
        ("run id", f"<code>{escape(run.run_id)}</code>"),
        ("created", escape(m.created_at)),
        ("vtx version", escape(m.vtx_version)),
        ("catalogue", f"{escape(cat.id)} {escape(cat.version)}"),
        ("catalogue sha256", f"<code>{escape(cat.sha256)}</code>"),
        ("scenario", escape(m.scenario)),
        ("origin", escape(m.origin) if m.origin else '<span class="muted">not stated</span>'),
        ("vehicle identifier", f"<code>{escape(m.keys.vehicle_id)}</code> onshore only; "
         f"the export carries <code>{escape(m.keys.token)}</code> "
         f"({escape(m.keys.token_method)})"),
        ("timestamp", f"<code>{escape(m.keys.timestamp)}</code>, in both outputs"),
        ("key id", _key_ids(run)),
    ])
    return (
        f'<h2 id="run-{escape(run.run_id)}">Run <code>{escape(run.run_id)}</code>: '
        f"{escape(m.scenario)}</h2>\n{note}{facts}\n"
        f"<h3>What went where</h3>\n{_chart(run)}\n"
        f"<h3>Outputs</h3>\n{_outputs(run)}\n"
        f"<h3>Inputs</h3>\n{_inputs(run.onshore or m)}\n"
        f"<h3>Columns by class and destination</h3>\n{_class_table(run)}\n"
        f"<h3>Value detectors</h3>\n{_detections(run)}\n"
        f"{_protobuf(run)}"
        f"<h3>Every column</h3>\n{_columns(run)}\n"
    )


def _protobuf(run: RunOutputs) -> str:
    """Protobuf input: format, key/value entry counts and quarantined records (counts only)."""
    fmt = run.any.extra.input_format
    if fmt is None:
        return ""
    facts = [("format", f"protobuf, {escape(fmt.layout)} messages of "
              f"<code>{escape(fmt.message)}</code>, {escape(fmt.framing)} framing")]
    entries = run.any.extra.entries
    if entries is not None:
        facts.append(("entries", ", ".join(
            f"{escape(k).replace('_', ' ')} {v:,}" for k, v in entries.items())))
    # The onshore manifest lists them; the export's holds their count only.
    count = (len(run.onshore.extra.quarantined or ()) if run.onshore is not None
             else run.any.extra.quarantined_records or 0)
    facts.append(("quarantined records",
                  f"{count:,} (raw bytes under the onshore output's quarantine/)"
                  if count else "none"))
    return f"<h3>Protobuf input</h3>\n{_facts(facts)}\n"


def _facts(items: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="facts">{rows}</dl>'


def _table(
    head: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int], css: str = ""
) -> str:
    def cell(tag: str, i: int, v: str) -> str:
        return f'<{tag} class="num">{v}</{tag}>' if i in numeric else f"<{tag}>{v}</{tag}>"

    header = "".join(cell("th", i, escape(h)) for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    css_class = f' class="{css}"' if css else ""
    return f"<table{css_class}><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _outputs(run: RunOutputs) -> str:
    rows = []
    for side, man, directory in (("export", run.export, run.export_dir),
                                 ("onshore", run.onshore, run.onshore_dir)):
        if man is None:
            continue
        size = sum(f.bytes for f in man.files)
        rows.append([_badge(side), f"<code>{escape(str(directory))}</code>",
                     f"{len(man.files):,}", f"{man.rows:,}", f"{size:,}", f"{len(man.columns):,}"])
    table = _table(["side", "directory", "files", "rows", "bytes", "columns"], rows, {2, 3, 4, 5})
    entries = run.any.extra.entries
    if entries is not None:  # key/value input: each entry is on exactly one side
        return table + _entries_verdict(run, entries["entries"])
    inputs_rows = sum(i.rows for i in run.any.inputs)
    counts = {m.rows for m in (run.export, run.onshore) if m} | {inputs_rows}
    verdict = (f'<p class="ok">Rows reconcile: input, and each output given, hold '
               f"{inputs_rows:,} rows.</p>" if len(counts) == 1 else
               f'<p class="bad">Rows do not reconcile: input {inputs_rows:,}, '
               + ", ".join(f"{s} {m.rows:,}" for s, m in (("export", run.export),
                                                            ("onshore", run.onshore)) if m)
               + ".</p>")
    return table + verdict


def _entries_verdict(run: RunOutputs, read: int) -> str:
    if run.export is None or run.onshore is None:
        return (f'<p class="muted">{read:,} key/value entries read; give both sides to see '
                "them reconcile.</p>")
    written = run.export.rows + run.onshore.rows
    if written == read:
        return (f'<p class="ok">Entries reconcile: {read:,} read, {run.export.rows:,} '
                f"exported and {run.onshore.rows:,} kept onshore, each once.</p>")
    return (f'<p class="bad">Entries do not reconcile: {read:,} read, {written:,} '
            "written.</p>")


def _key_ids(run: RunOutputs) -> str:
    """The key id of each side given, flagged when they differ (tokens of two keys)."""
    ids = {side: man.keys.key_id or "not recorded"
           for side, man in (("export", run.export), ("onshore", run.onshore)) if man}
    if len(set(ids.values())) == 1:
        return f"<code>{escape(next(iter(ids.values())))}</code>"
    return '<span class="bad">differ: </span>' + ", ".join(
        f"{side} <code>{escape(value)}</code>" for side, value in ids.items())


def _inputs(manifest: Manifest) -> str:
    if manifest.destination == "export":  # rows only: the rest stays onshore
        rows = [[f"{n}", f"{i.rows:,}"] for n, i in enumerate(manifest.inputs)]
        return (_table(["input", "rows"], rows, {0, 1}) + '<p class="muted">The export '
                "manifest holds each input's rows only; paths, sizes and SHA-256 are in the "
                "onshore manifest.</p>")
    rows = [[f"<code>{escape(str(i.path))}</code>", f"{i.rows:,}", f"{i.bytes or 0:,}",
             f"<code>{escape(str(i.sha256))}</code>"] for i in manifest.inputs]
    return _table(["path", "rows", "bytes", "sha256"], rows, {1, 2})


def _destinations(run: RunOutputs) -> list[tuple[str, ColumnRecord]]:
    """(destination, column record) of every column: keys in both outputs show as `both`."""
    exported = run.export.columns if run.export is not None else ()
    kept = run.onshore.columns if run.onshore is not None else ()
    export_names = {c.name for c in exported}
    onshore_names = {c.name for c in kept}
    out: list[tuple[str, ColumnRecord]] = []
    for c in exported:
        out.append(("both" if c.name in onshore_names else "export", c))
    for c in kept:
        if c.name not in export_names:
            out.append(("onshore", c))
    return out


def _class_table(run: RunOutputs) -> str:
    grouped: dict[tuple[str, str], list[str]] = {}
    for dest, c in _destinations(run):
        grouped.setdefault((c.data_class, dest), []).append(c.name)
    rows = [[escape(cls), _badge(dest), f"{len(names):,}",
             ", ".join(f"<code>{escape(n)}</code>" for n in names)]
            for (cls, dest), names in sorted(grouped.items())]
    return _table(["class", "destination", "columns", "names"], rows, {2})


def _columns(run: RunOutputs) -> str:
    rows = [[f"<code>{escape(c.name)}</code>", escape(c.data_class), _badge(dest),
             escape(c.rule or "-"), escape(c.action or ""), escape(c.reason),
             f'<span class="muted">{escape(c.basis)}</span>']
            for dest, c in _destinations(run)]
    return _table(["column", "class", "destination", "rule", "action", "reason", "legal basis"],
                  rows, set(), "columns")


def _detections(run: RunOutputs) -> str:
    found = run.any.detections
    if not found:
        return '<p class="muted">No exported string field: the detectors had nothing to scan.</p>'
    detectors = sorted({d for f in found for d in f.hits})
    rows = [[f"<code>{escape(f.field)}</code>", f"{f.moved_values:,}",
             *(f"{f.hits.get(d, 0):,}" for d in detectors)] for f in found]
    moved = sum(f.moved_values for f in found)
    lead = (f"<p>{len(found)} exported string field(s) scanned value by value; {moved:,} "
            "value(s) moved onshore (nulled in the export, kept in the onshore output).</p>")
    return lead + _table(["field", "moved values", *detectors], rows,
                         set(range(1, 2 + len(detectors))))


def _badge(dest: str) -> str:
    return f'<span class="dest dest-{escape(dest)}">{escape(dest)}</span>'


def _chart(run: RunOutputs) -> str:
    """Horizontal stacked bars: per class, columns exported, in both (keys), kept onshore."""
    per_class: dict[str, Counter[str]] = {}
    for dest, c in _destinations(run):
        per_class.setdefault(c.data_class, Counter())[dest] += 1
    classes = sorted(per_class, key=lambda k: (-sum(per_class[k].values()), k))
    widest = max((sum(v.values()) for v in per_class.values()), default=1)
    label_w, bar_w, row_h, top = 150, 560, 24, 28
    colours = {**_COLOURS, "both": "#57606a"}
    parts = ['<text x="0" y="16" font-weight="600">columns per class</text>']
    legend_x = label_w
    for dest, label in (("export", "exported"), ("both", "key, in both"),
                        ("onshore", "kept onshore")):
        parts.append(f'<rect x="{legend_x}" y="6" width="12" height="12" '
                     f'fill="{colours[dest]}"/><text x="{legend_x + 16}" y="16">{label}</text>')
        legend_x += 130
    for i, cls in enumerate(classes):
        y = top + i * row_h
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
                     f"{escape(cls)}</text>")
        x = float(label_w)
        for dest in ("export", "both", "onshore"):
            n = per_class[cls][dest]
            if not n:
                continue
            w = bar_w * n / widest
            parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                         f'fill="{colours[dest]}"><title>{escape(cls)}: {n} {dest}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{sum(per_class[cls].values())}</text>')
    y = top + len(classes) * row_h + 18
    parts.append(f'<text x="0" y="{y}" font-weight="600">rows per output</text>')
    sides = [(s, m) for s, m in (("export", run.export), ("onshore", run.onshore)) if m]
    most = max((m.rows for _s, m in sides), default=0) or 1
    for j, (side, man) in enumerate(sides):
        yy = y + 10 + j * row_h
        w = bar_w * man.rows / most
        parts.append(f'<text x="{label_w - 8}" y="{yy + 15}" text-anchor="end">{side}</text>'
                     f'<rect x="{label_w}" y="{yy + 3}" width="{w:.1f}" height="{row_h - 6}" '
                     f'fill="{colours[side]}"/><text x="{label_w + w + 6:.1f}" y="{yy + 15}">'
                     f"{man.rows:,} rows</text>")
    height = y + 10 + len(sides) * row_h + 8
    width = label_w + bar_w + 80
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="columns per class and '
            f'destination, rows per output">{"".join(parts)}</svg>')


__all__ = ["RunOutputs", "load_runs", "render_report", "write_report"]
