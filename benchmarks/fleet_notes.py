"""The free-text workshop notes of the Parquet fleet log (``Vehicle.Service.Notes``).

In: a numpy random generator and a row count. Out: an Arrow string array of notes in English
and Chinese, high-cardinality like real free text (each template carries a number), a fifth
null (:data:`NOTES_NULL_RATE`) and about one in a thousand (:data:`SENSITIVE_RATE`) holding a
licence plate, a mobile number, coordinates or an e-mail address: what vtx's value detectors
must catch. Changing a template or a rate changes the generated data: bump
:data:`benchmarks.generate.GENERATOR_VERSION`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.fleet_signals import STR

#: Share of rows whose note is null.
NOTES_NULL_RATE = 0.2
#: Share of rows whose note holds a sensitive string (plate, mobile, coordinates, e-mail).
SENSITIVE_RATE = 0.001
_CN_COMMA = "\uff0c"  # the full-width comma of Chinese text


@dataclass(frozen=True)
class NoteTemplate:
    """``prefix + number + suffix``; the number is drawn in ``[lo, hi)`` and zero-padded to
    ``width`` digits. ``hi == 0`` means no number."""

    prefix: str
    suffix: str = ""
    lo: int = 0
    hi: int = 0
    width: int = 0


#: Harmless workshop notes, drawn uniformly. The numbers make the column high-cardinality
#: (realistic free text), so vtx scans it row by row rather than once per distinct value.
HARMLESS_NOTES: tuple[NoteTemplate, ...] = (
    NoteTemplate("Routine service completed at ", " km", 5_000, 300_000),
    NoteTemplate("Tyre pressures adjusted to ", " kPa", 220, 261),
    NoteTemplate("Customer reports rattle from rear left door above ", " km/h", 40, 131),
    NoteTemplate("DTC P0", " cleared after inspection", 100, 1000),
    NoteTemplate("Brake pads at ", "% - no action needed", 10, 91),
    NoteTemplate("Job card ", " closed", 100_000, 1_000_000),
    NoteTemplate("12V battery health ", "%, recharged overnight", 60, 101),
    NoteTemplate("Charging session aborted after ", " min, connector reseated", 1, 240),
    NoteTemplate("Wiper blades replaced"),
    NoteTemplate("Cabin air filter replaced"),
    NoteTemplate("No fault found; test drive OK"),
    NoteTemplate("Washer fluid topped up"),
    NoteTemplate("Charging port cover sticky, lubricated"),
    NoteTemplate(f"更换机油和机油滤清器{_CN_COMMA}里程 ", " 公里", 5_000, 300_000),
    NoteTemplate(f"左前轮胎压偏低{_CN_COMMA}已充气至 ", " kPa", 230, 251),
    NoteTemplate(f"客户反映空调异响{_CN_COMMA}已检查"),
    NoteTemplate(f"软件升级完成{_CN_COMMA}工单 ", "", 100_000, 1_000_000),
)

#: Sensitive notes, one row in a thousand: what vtx's detectors must catch.
SENSITIVE_NOTES: tuple[NoteTemplate, ...] = (
    NoteTemplate("车主车牌沪A", f"{_CN_COMMA}预约下周保养", 0, 100_000, 5),  # licence plate
    NoteTemplate("Call owner on 138", " when the car is ready", 0, 100_000_000, 8),  # mobile
    NoteTemplate("联系车主 139", " 取车", 0, 100_000_000, 8),  # mobile
    NoteTemplate("Towed from 31.23", ", 121.473701 to the workshop", 0, 10_000, 4),  # coords
    NoteTemplate("Send the invoice to owner", "@example.com", 1000, 10_000),  # e-mail
)
NOTE_TEMPLATES = HARMLESS_NOTES + SENSITIVE_NOTES


def draw_notes(rng: np.random.Generator, n: int) -> pa.Array:
    """Draw ``n`` notes: template indices and numbers with numpy, strings joined by Arrow."""
    harmless, sensitive = len(HARMLESS_NOTES), len(SENSITIVE_NOTES)
    idx = rng.integers(0, harmless, size=n)
    u = rng.random(n)
    is_sensitive = u < SENSITIVE_RATE
    idx[is_sensitive] = harmless + rng.integers(0, sensitive, size=int(is_sensitive.sum()))
    lo = np.array([t.lo for t in NOTE_TEMPLATES], dtype=np.int64)[idx]
    hi = np.array([t.hi for t in NOTE_TEMPLATES], dtype=np.int64)[idx]
    width = np.array([t.width for t in NOTE_TEMPLATES], dtype=np.int64)[idx]
    number = lo + np.floor(rng.random(n) * np.maximum(hi - lo, 1)).astype(np.int64)
    digits = pc.cast(pa.array(number), STR)
    # Zero-pad to the template's width (widths are few: pad once per distinct width).
    for w in {t.width for t in NOTE_TEMPLATES if t.width}:
        digits = pc.if_else(pa.array(width == w), pc.utf8_lpad(digits, w, "0"), digits)
    digits = pc.if_else(pa.array(hi > 0), digits, pa.scalar("", STR))
    take = pa.array(idx)
    notes = pc.binary_join_element_wise(
        pa.array([t.prefix for t in NOTE_TEMPLATES], STR).take(take),
        digits,
        pa.array([t.suffix for t in NOTE_TEMPLATES], STR).take(take),
        "",
    )
    is_null = (u >= SENSITIVE_RATE) & (u < SENSITIVE_RATE + NOTES_NULL_RATE)
    return pc.if_else(pa.array(is_null), pa.scalar(None, STR), notes)
