"""How many SMS segments a text takes, and in which encoding (3GPP TS 23.038).

Providers bill per segment, and a single character outside the GSM 7-bit alphabet (an "á",
an emoji, a curly quote) switches the whole text to UCS-2, which more than halves what a segment
holds. The message texts are written to fit one GSM-7 segment; this counts what they take.
"""

from __future__ import annotations

from typing import Final

GSM_7: Final = "GSM-7"
UCS_2: Final = "UCS-2"

# The GSM 7-bit default alphabet (TS 23.038 section 6.2.1), in table order. 0x1B is the
# escape to the extension table, so it is not a character of its own.
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ" + "ÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The default extension table (section 6.2.1.1): each is sent as escape + character, two septets.
_EXTENSION = "\f^{}\\[~]|€"

BASIC_CHARACTERS: Final = frozenset(_BASIC)
EXTENSION_CHARACTERS: Final = frozenset(_EXTENSION)

# Septets (GSM-7) or UTF-16 code units (UCS-2) in one message, and in each part of a longer one
# (the rest of each part holds the concatenation header).
_SINGLE = {GSM_7: 160, UCS_2: 70}
_PART = {GSM_7: 153, UCS_2: 67}


def encoding(text: str) -> str:
    """GSM-7 when every character is in the default alphabet or its extension, else UCS-2."""
    allowed = BASIC_CHARACTERS | EXTENSION_CHARACTERS
    return GSM_7 if all(char in allowed for char in text) else UCS_2


def units(text: str) -> tuple[str, int]:
    """The encoding and the text's length in it: septets, or UTF-16 code units."""
    kind = encoding(text)
    if kind == GSM_7:
        return kind, sum(2 if char in EXTENSION_CHARACTERS else 1 for char in text)
    return kind, len(text.encode("utf-16-le")) // 2


def segments(text: str) -> tuple[str, int]:
    """The encoding and the number of segments the text is sent as (0 for an empty text).

    A segment boundary never splits an extension character's escape pair, nor a surrogate pair
    in UCS-2, so a long text is counted part by part rather than divided.
    """
    kind, length = units(text)
    if length <= _SINGLE[kind]:
        return kind, 1 if length else 0
    count, used = 1, 0
    for size in _sizes(text, kind):
        if used + size > _PART[kind]:
            count, used = count + 1, 0
        used += size
    return kind, count


def _sizes(text: str, kind: str) -> list[int]:
    """Each character's size in units: 2 for a GSM extension or a character beyond the BMP."""
    if kind == GSM_7:
        return [2 if char in EXTENSION_CHARACTERS else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]
