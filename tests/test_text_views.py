"""The detector's normalised view and the answer guard's decoded view visit only the characters
that can change; each must read every text exactly as a plain loop over every character does."""

from __future__ import annotations

import random
import unicodedata

import pytest

from redaction.answer_view import DASHES, decoded_view
from redaction.normalize import LINE_SEPARATORS, normalised_view
from redaction.response_guard import redact_values
from tests.test_response_guard import POLICY

PIECES = [
    "4111 1111 1111 1111", "jane.roe@example.com", "plain words ", "%40", "%4", "%zz", "\\u0040", "\\u00e9",
    "\\u12", "\\n", "\\/", "\\x", "\\", "&#64;", "&#x40;", "&#xZ;", "&#99999999;", "&#x110000;", "&#٣;", "&amp;",
    "&", "%", "é", "’", "“quoted”", "\u00a0", "\u200b", "\u2028", "\u0085", "\u2014", "\u2212", "ｆｕｌｌ１２",
    "①", "ﬁ", "٣٤٥", "日本語", "🙂", "\ufeff", "e\u0301", " ", "-", "&#２１２５５５０１００;", "&#１２;", "&#x1F642;",
    "&#" + "0" * 5000 + "64;", "&#" + "7" * 5000 + ";", "\ud800", "\udfff", "\ufe58",
]  # fmt: skip


def reference_decoded_view(text: str) -> tuple[str, list[int]]:
    """The guard's view, one character at a time (what the fast version must equal)."""
    import re

    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "/": "/"}
    out: list[str] = []
    index: list[int] = []
    position = 0
    while position < len(text):
        char = text[position]
        consumed, decoded = 1, char
        if char == "%" and (m := re.compile(r"%([0-9A-Fa-f]{2})").match(text, position)):
            consumed, decoded = 3, chr(int(m.group(1), 16))
        elif char == "\\" and (m := re.compile(r"\\u([0-9A-Fa-f]{4})").match(text, position)):
            consumed, decoded = 6, chr(int(m.group(1), 16))
        elif char == "\\" and position + 1 < len(text) and text[position + 1] in escapes:
            consumed, decoded = 2, escapes[text[position + 1]]
        elif char == "&" and (m := re.compile(r"&#(x[0-9A-Fa-f]+|\d+);").match(text, position)):
            ref = m.group(1)
            if ref[0] == "x":
                code = int(ref[1:], 16)
            else:  # digits of any script, as many as written (int() refuses more than 4300)
                code = 0
                for digit in ref:
                    code = min(code * 10 + unicodedata.decimal(digit), 0x110000)
            if code <= 0x10FFFF:
                consumed, decoded = m.end() - position, chr(code)
        if not decoded.isascii():
            if unicodedata.category(decoded) == "Cf":
                decoded = ""
            elif unicodedata.category(decoded) == "Zs":
                decoded = " "
            elif decoded in DASHES:
                decoded = "-"
            else:
                decoded = unicodedata.normalize("NFKC", decoded)
        for piece in decoded:
            out.append(piece)
            index.append(position)
        position += consumed
    return "".join(out), index


def reference_normalised_view(text: str) -> tuple[str, list[int]]:
    out: list[str] = []
    index: list[int] = []
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if category == "Zs" or char in LINE_SEPARATORS:
            folded = " "
        elif category == "Cs":
            folded = "\ufffd"  # a lone surrogate
        elif char.isascii():
            folded = char
        else:
            folded = unicodedata.normalize("NFKC", char)
        out.extend(folded)
        index.extend([position] * len(folded))
    return "".join(out), index


def random_texts(seed: int, count: int = 400) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12))) for _ in range(count)]


def offsets(view: str, index: object) -> list[int]:
    return list(range(len(view))) if index is None else [index[i] for i in range(len(view))]  # type: ignore[index]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("fast", "reference"),
    [(decoded_view, reference_decoded_view), (normalised_view, reference_normalised_view)],
    ids=["decoded view (answers)", "normalised view (detector)"],
)
def test_each_view_equals_a_character_by_character_reading(fast, reference, seed: int):
    for text in random_texts(seed):
        view, index = fast(text)
        expected_view, expected_index = reference(text)
        assert view == expected_view, text
        assert offsets(view, index) == expected_index, text


def test_a_character_reference_beyond_unicode_is_read_as_written():
    """An answer holding ``&#99999999;`` once made the guard raise (chr out of range): a 500."""
    assert redact_values("see &#99999999; and &#x110000; then mail jane.roe@example.com", POLICY) == (
        "see &#99999999; and &#x110000; then mail <EMAIL_ADDRESS_REDACTED>"
    )


def test_what_follows_a_reference_to_no_character_is_still_decoded():
    """Full-width digits inside a reference too large to name a character are folded like any
    others: the phone number they spell is found (a reading that skipped them let it through)."""
    assert redact_values("call &#２１２５５５０１００; now", POLICY) == "call &#<PHONE_NUMBER_REDACTED>; now"


def test_a_reference_with_thousands_of_digits_is_decoded_without_error():
    """int() refuses more than 4300 digits; browsers read ``&#000...64;`` as "@"."""
    assert redact_values("mail jane.roe&#" + "0" * 5000 + "64;example.com", POLICY) == ("mail <EMAIL_ADDRESS_REDACTED>")
    long_number = "&#" + "9" * 5000 + ";"
    assert redact_values(f"see {long_number}", POLICY) == f"see {long_number}"


def test_one_for_one_readings_keep_every_offset():
    """Curly quotes and dashes are read one character for one: the view keeps the text's offsets
    (no index is built), and a value found after them is redacted exactly where it is written."""
    text = "It’s done — call 212\u2011555\u20110100 today, “please”."
    view, index = decoded_view(text)
    assert view == "It’s done - call 212-555-0100 today, “please”."
    assert offsets(view, index) == list(range(len(text)))
    assert redact_values(text, POLICY) == "It’s done — call <PHONE_NUMBER_REDACTED> today, “please”."


@pytest.mark.parametrize(
    ("fast", "reference"), [(decoded_view, reference_decoded_view), (normalised_view, reference_normalised_view)]
)
def test_a_reading_that_is_itself_read_differently_is_not_read_twice(fast, reference):
    """A small em dash reads as an em dash, which the answer guard reads as "-": replaced one
    kind of character after another, the small one would become "-" too."""
    text = "a\ufe58b\u2014c"
    assert fast(text)[0] == reference(text)[0]
    assert decoded_view(text)[0] == "a\u2014b-c"
