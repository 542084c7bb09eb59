"""Text from data, made safe to print: the one escaping helper of every message vtx shows.

In: any text vtx shows that may quote data or a catalogue: a file name (a topic dump's, an
input's), a column name, a rule id, a key, a value.
Out: `printable`: the same text with every character a terminal or log reader would act on
written as a visible escape; `printable_json`: a JSON document's text, likewise.
May fail: nothing.

What is escaped: the C0 controls (NUL, BEL, BS, TAB, LF, CR, ESC, ...), DEL and the C1
controls (U+0080-U+009F: a terminal may take U+009B for ESC '['), the Unicode line and
paragraph separators, the zero-width characters and the bidirectional overrides and
isolates (they reorder what a reader sees: "Trojan Source"), the byte-order mark, and lone
surrogates (what `os.fsdecode` makes of a file name's bytes that are not UTF-8: printed
raw they end the program with an encoding error, so they show as the byte, ``\\xNN``).
Escapes: ``\\n``, ``\\r``, ``\\t``; ``\\xNN`` below U+0100; ``\\uNNNN`` above. So a newline
in a file name cannot forge a second ``vtx: error:`` line, an escape sequence cannot clear
the screen or set the terminal's title, and a message stays on one line.

Markup is the renderer's part: the CLI's Rich consoles are made with markup off
(`filter.cli.output`), so ``[link=...]`` in a column name is printed as it is.
Idempotent: escaped text holds none of the characters escaped, so escaping twice (an error
message escaped where it is made, then where it is printed) changes nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters that act on a terminal or on the order a reader sees text in, but can appear
# inside a JSON string as they are (json.dumps escapes the C0 controls itself).
_WITHIN_JSON = (
    "\x7f-\x9f"  # DEL, C1 controls
    "\u061c"  # Arabic letter mark
    "\u200b-\u200f"  # zero-width space, (non-)joiners, LRM, RLM
    "\u2028-\u202e"  # line and paragraph separators, bidirectional embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidirectional isolates
    "\ufeff"  # byte-order mark, zero-width no-break space
    "\ufff9-\ufffb"  # interlinear annotation controls
    "\ud800-\udfff"  # lone surrogates (a file name's undecodable bytes)
)
_UNPRINTABLE = re.compile(f"[\x00-\x1f{_WITHIN_JSON}]")
_UNPRINTABLE_IN_JSON = re.compile(f"[{_WITHIN_JSON}]")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """`text` (made a string) with every control, invisible or reordering character escaped:
    one line, shown as it is."""
    return _UNPRINTABLE.sub(_escaped, str(text))


def printable_json(document: Any) -> str:
    """`document` as indented JSON text (non-ASCII kept) with the characters `printable`
    escapes that JSON leaves as they are written as JSON escapes (``\\u009b``): the same
    document to a parser, nothing a terminal acts on."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    return _UNPRINTABLE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
