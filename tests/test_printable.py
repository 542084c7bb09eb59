"""`filter.printable`: data printed as data (control, invisible and reordering characters
escaped; JSON that parses back to the same document)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from filter.printable import printable, printable_json

#: What must never be printed as it is: it moves the cursor, rings, clears the screen, sets
#: the terminal's title, starts a new line, or reorders what a reader sees.
ACTIVE = [chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7F, 0xA0)] + [
    "\u2028", "\u2029", "\u202e", "\u2066", "\u2069", "\u200b", "\u200f", "\ufeff"]


def test_controls_are_escaped_visibly() -> None:
    assert printable("a\nvtx: error: forged") == "a\\nvtx: error: forged"
    assert printable("\x1b]0;title\x07\x1b[2J") == "\\x1b]0;title\\x07\\x1b[2J"
    assert printable("tab\there\r\x00\x7f\x9b") == "tab\\there\\r\\x00\\x7f\\x9b"
    assert printable("abc\u202edcb") == "abc\\u202edcb"


def test_a_file_names_undecodable_bytes_show_as_bytes() -> None:
    name = b"batch-\xff\xfe.parquet".decode("utf-8", "surrogateescape")
    assert printable(name) == "batch-\\xff\\xfe.parquet"
    printable(name).encode("utf-8")  # printable: no lone surrogate left


def test_ordinary_text_is_left_as_it_is() -> None:
    for text in ("Vehicle.Speed", "31.2304\uff0c121.4737", "上海 临港", "[link=x]y[/link]",
                 "a\\nb"):
        assert printable(text) == text


@given(st.text())
def test_nothing_active_is_left_and_escaping_twice_changes_nothing(text: str) -> None:
    shown = printable(text)
    assert not any(c in shown for c in ACTIVE)
    assert printable(shown) == shown


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=10))
def test_json_parses_back_to_the_same_document_and_holds_nothing_active(document) -> None:
    text = printable_json(document)
    assert json.loads(text) == document
    assert not any(c in text for c in ACTIVE if c != "\n")  # its own line breaks only
