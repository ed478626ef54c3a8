"""What the fuzzer types into a field: arbitrary text, bytes, huge and nested values.

Text is any unicode but lone surrogates (which no browser can send): control characters, NUL,
right-to-left marks, combining and private-use characters included. Bytes are sent as they are
(invalid UTF-8 among them), both percent-encoded and raw. Besides random draws there are the
values that broke forms elsewhere: numbers past 64 bits, exponents, dates that do not exist, JSON
nested thousands deep, megabyte-sized strings.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

Value = str | bytes

# Any character a browser can send, as hypothesis draws them (shrinking towards "0").
any_character = st.characters(exclude_categories=("Cs",))
any_text = st.text(any_character, max_size=40)

SPECIAL = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\u202e\u202d",  # right-to-left and left-to-right overrides
    "\u200f\u200e",  # right-to-left and left-to-right marks
    "\ufeff",  # byte order mark
    "\u0000\u001f\u007f\u0085\u2028\u2029",
    "\ud7ff\ue000\U0010ffff",  # edges of the valid range
    "e\u0301\u0301\u0301",  # combining marks
    "0",
    "-0",
    "-1",
    "1.5",
    "1e309",
    "-1e309",
    "NaN",
    "inf",
    "-inf",
    "0x10",
    "+7",
    "1_000",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: isdigit(), but no ASCII digit
    "\u00b2",  # superscript two: isdigit(), int() refuses it
    "\uff11",  # fullwidth one: int() accepts it
    str(2**31),
    str(2**63),
    str(-(2**63) - 1),
    str(10**30),
    "9" * 400,
    "2026-02-30",
    "0000-00-00",
    "9999-12-31",
    "10000-01-01",
    "1900-01-01",
    "24:00",
    "99:99",
    "-1:00",
    "true",
    "null",
    "[]",
    "{}",
    '{"__proto__": {}}',
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    '"; DROP TABLE patient; --',
    "%00",
    "%FF",
    "../../etc/passwd",
    "\r\n",
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "a" * 65,
    "x@y",
    "+1 216 555 0100",
    "America/New_York",
    "Not/A_Zone",
    "es",
    "zz",
]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


json_value: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)

long_text = st.builds(
    lambda piece, times: piece * times,
    st.text(any_character, min_size=1, max_size=3),
    st.sampled_from([101, 257, 1_001, 5_000, 9_000, 70_000]),
)

text_value: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(SPECIAL),
    any_text,
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats().map(str),
    json_value.map(json.dumps),
    st.integers(min_value=1, max_value=20_000).map(_nested),
    long_text,
)

byte_value: st.SearchStrategy[bytes] = st.binary(max_size=40)

field_value: st.SearchStrategy[Value] = st.one_of(text_value, text_value, byte_value)
