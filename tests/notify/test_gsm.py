"""Segment counts, against the limits of 3GPP TS 23.038 (alphabet) and TS 23.040 (segments).

A single SMS holds 160 GSM 7-bit septets or 70 UCS-2 code units; each part of a concatenated
one loses 7 septets (6 octets) to its header: 153 and 67. Extension-table characters take two
septets (escape + character), and no part ends between the two.
"""

from __future__ import annotations

import pytest

from proms.notify import gsm
from proms.notify.gsm import GSM_7, UCS_2, segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (GSM_7, 0)),
        ("a", (GSM_7, 1)),
        ("a" * 160, (GSM_7, 1)),
        ("a" * 161, (GSM_7, 2)),
        ("a" * 306, (GSM_7, 2)),
        ("a" * 307, (GSM_7, 3)),
        ("€" * 80, (GSM_7, 1)),  # 160 septets
        ("a" * 159 + "€", (GSM_7, 2)),  # 161 septets
        ("a" * 158 + "{", (GSM_7, 1)),  # 160 septets
        ("a" * 159 + "{", (GSM_7, 2)),
        ("á", (UCS_2, 1)),
        ("a" * 69 + "á", (UCS_2, 1)),
        ("a" * 70 + "á", (UCS_2, 2)),  # one "á" turns 71 characters into two segments
        ("a" * 133 + "á", (UCS_2, 2)),
        ("a" * 134 + "á", (UCS_2, 3)),
        ("😀" * 35, (UCS_2, 1)),  # a character beyond the BMP is two UTF-16 code units
        ("😀" * 36, (UCS_2, 2)),
    ],
    ids=repr,
)
def test_segments(text: str, expected: tuple[str, int]) -> None:
    assert segments(text) == expected


def test_an_escape_pair_is_never_split_between_parts() -> None:
    # 305 septets fit two parts only if the "€" at septets 153-154 moves whole to the second.
    assert segments("a" * 152 + "€" + "a" * 151) == (GSM_7, 2)
    # 306 septets, but the pair cannot straddle the boundary: three parts.
    assert segments("a" * 152 + "€" + "a" * 152) == (GSM_7, 3)


def test_a_surrogate_pair_is_never_split_between_parts() -> None:
    assert segments("a" * 66 + "😀" + "a" * 65) == (UCS_2, 2)  # 133 units: 66 | 2 + 65
    assert segments("a" * 66 + "😀" + "a" * 66) == (UCS_2, 3)  # 134 units: 66 | 67 | 1


@pytest.mark.parametrize("char", list("éèùìòÉÑñÜüÄäÖöÅåÆæßØøÇ¿¡àΔΦΓΛΩΠΨΣΘΞ@£$¥§¤_\n\r"))
def test_letters_of_the_default_alphabet_are_gsm(char: str) -> None:
    assert gsm.units(char) == (GSM_7, 1)


@pytest.mark.parametrize("char", list("^{}\\[~]|€\f"))
def test_extension_characters_take_two_septets(char: str) -> None:
    assert gsm.units(char) == (GSM_7, 2)


# The last five: curly quotes, an en dash and an ellipsis, which word processors put in.
@pytest.mark.parametrize("char", list("áíóúÁÍÓÚçâêôõ`\u2019\u201c\u201d\u2013\u2026"))
def test_other_letters_force_ucs2(char: str) -> None:
    assert gsm.encoding(f"Hola {char}") == UCS_2


def test_the_alphabet_has_its_127_characters_and_the_extension_its_10() -> None:
    # 128 code points, one of which (0x1B) is the escape to the extension table.
    assert len(gsm.BASIC_CHARACTERS) == 127
    assert len(gsm.EXTENSION_CHARACTERS) == 10
    assert not gsm.BASIC_CHARACTERS & gsm.EXTENSION_CHARACTERS
