"""Recognizers that return early on texts where they cannot match must find, on every text,
exactly what Presidio's own recognizer finds."""

from __future__ import annotations

import random
import re

import pytest
from presidio_analyzer import PatternRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    CryptoRecognizer,
    DateRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MedicalLicenseRecognizer,
    NhsRecognizer,
    UrlRecognizer,
    UsBankRecognizer,
    UsItinRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
)

from redaction.recognizers import URL_NEEDS, digit_margin, read_only_around_digits, url_recognizer_that_skips

PIECES = [
    "see ", "example.com", "https://www.example.org/path?q=1", "e.g. ", "end. Next", "a.b", "x.COM", "www.",
    "jane.roe@example.net", "'http://site.io'", "\"docs.python.org\"", "v2.4", "3.14", ".", " ", "ſ", "\u212a",
    "file.py", "Mr.Smith", "config.yaml", "shop.zw", "X.ZA", "https://a.com/x\x1cy", "site.com/p\u2003q", "\t",
    "\n", "..", "-", "/", "(", ")",
]  # fmt: skip


def spans(recognizer: UrlRecognizer, text: str) -> list[tuple[int, int, float]]:
    return sorted((r.start, r.end, r.score) for r in recognizer.analyze(text, ["URL"]))


def test_the_url_recognizer_that_skips_finds_what_presidios_finds():
    vanilla = UrlRecognizer(supported_language="en")
    skipping = url_recognizer_that_skips(UrlRecognizer)(supported_language="en", name=vanilla.name)
    rng = random.Random(7)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 10))) for _ in range(600)]
    skipped = 0
    for text in texts:
        assert spans(skipping, text) == spans(vanilla, text), text
        skipped += URL_NEEDS.search(text) is None
    assert 50 < skipped < 550  # both paths were exercised
    assert any(spans(vanilla, text) for text in texts)


def test_every_url_presidio_matches_has_a_dot_before_a_letter():
    """The skip's premise, read from Presidio's patterns: every pattern contains the base regex,
    whose dot before the top-level domain is required, and every top-level domain begins with a
    letter. If a Presidio upgrade changes this, this test fails."""
    base = UrlRecognizer.BASE_URL_REGEX
    assert all(base in pattern.regex for pattern in UrlRecognizer.PATTERNS)
    found = re.search(r"\{1,253\}\[\.\]\(\?:((?:\(\?:[^()]*\)\|?)+)\)(.)", base)
    assert found is not None, "the top-level domain group moved"
    top_level_domains = re.findall(r"\(\?:([^()]*)\)", found.group(1))
    assert len(top_level_domains) > 100
    assert all(tld[:1].isascii() and tld[:1].isalpha() for tld in top_level_domains)
    assert found.group(2) not in "?*{", "the top-level domain became optional"


# --- pattern recognizers read only around digits

DIGIT_PIECES = [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "078-05-1120", "078 05 1120", "078051120",
    "A1234567", "H12345678", "X1234567R", "AB1234563", "911-70-1234", "943 476 5919", "9434765919",
    "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "011000015", "12345678901234567", "A-Z]]123", "ab12cd", "٣٤٥٦٧٨٩",
    "１２３４５６７８９", "7", "12", "x", " ", "-", ".", "\n", "\x1c", "licence ", "card: ", "ssn ", "word ",
    "a" * 30, "9" * 25, "ZZ", "é", "_", "(", ")", "DEA: AB", "AB\U00011f51\U00011f52\U00011f53\U00011f54\U00011f55",
    "\U0001e4f3\U0001e4f4",  # Kawi and Nag Mundari digits: digits to the regex module, not to Python 3.11's re
]  # fmt: skip
WINDOWED = [CreditCardRecognizer, UsBankRecognizer, UsLicenseRecognizer, UsItinRecognizer, UsPassportRecognizer,
            UsSsnRecognizer, NhsRecognizer, CryptoRecognizer, MedicalLicenseRecognizer]  # fmt: skip


def found(recognizer: PatternRecognizer, text: str) -> list[tuple[str, int, int, float]] | str:
    try:
        results = recognizer.analyze(text, recognizer.supported_entities)
    except ValueError as exc:  # Presidio's DEA check calls int() on any \d: refusing must stay refusing
        return type(exc).__name__
    return sorted((r.entity_type, r.start, r.end, r.score) for r in results)


@pytest.mark.parametrize("recognizer_class", WINDOWED, ids=lambda c: c.__name__)
def test_reading_only_around_digits_finds_what_presidio_finds(recognizer_class: type[PatternRecognizer]):
    vanilla, windowed = recognizer_class(), recognizer_class()
    assert read_only_around_digits(windowed, PatternRecognizer), "the premise no longer holds: see digit_margin"
    rng = random.Random(recognizer_class.__name__)
    texts = ["".join(rng.choice(DIGIT_PIECES) for _ in range(rng.randint(1, 14))) for _ in range(400)]
    kawi = "".join(chr(0x11F50 + int(digit)) for digit in "1234563")  # digits to regex, not to Python 3.11's re
    texts += ["words without a single digit " * 20, "", "1", "0" * 200, f"DEA: AB{kawi} and 078-05-1120"]
    for text in texts:
        assert found(windowed, text) == found(vanilla, text), text
    assert any(found(vanilla, text) for text in texts)  # the comparison saw matches


def test_recognizers_whose_matches_may_hold_no_digit_or_have_their_own_analyze_are_left_alone():
    for recognizer_class in (DateRecognizer, IpRecognizer, IbanRecognizer, UrlRecognizer):
        recognizer = recognizer_class()
        assert not read_only_around_digits(recognizer, PatternRecognizer), recognizer_class.__name__
    with_deny_list = PatternRecognizer("CODE", deny_list=["A1"])
    assert not read_only_around_digits(with_deny_list, PatternRecognizer)


@pytest.mark.parametrize(
    ("pattern", "margin"),
    [
        (r"\b\d{3}\b", 3 + 0 + 1),
        (r"(?<=\s)[A-Z]\d{2}(?=x{3})", 3 + 3 + 1),
        (r"\b(\d{2}|[A-Z]\d)\b", 2 + 0 + 1),
        (r"\d*", None),  # may match nothing: no digit
        (r"[0-9a]{3}", None),  # "aaa" holds no digit
        (r"\d|[A-Z]", None),  # one branch without a digit
        (r"[^0-9]\d", 2 + 0 + 1),
        (r"[^0-9]{2}", None),
        (r"\d+", None),  # unbounded
        (r"^\d{3}", None),  # reads where a line begins
        (r"\d{3}$", None),
        (r"\d{3}(?=\w*x)", None),  # an unbounded look-ahead
        (r"\d(?=.{5}(?=.{5}Q))", 1 + (5 + 6) + 1),  # nested look-arounds add up
        (r"(?<=(?<=Q\w{4})\w{5})\d", 1 + (5 + 5) + 1),
        (r"x[[:alpha:]1]", None),  # a POSIX class: re would read a required "1", regex does not
        (r"\d{2}{e<=1}", None),  # fuzzy matching (regex only)
    ],
)
def test_digit_margin_reads_a_pattern_s_premise(pattern: str, margin: int | None):
    assert digit_margin(pattern, re.IGNORECASE | re.MULTILINE | re.DOTALL) == margin


def test_other_flags_than_the_premise_was_read_with_get_presidio_s_own_scan():
    """The margin was read with the recognizer's own flags; a caller's other flags (MULTILINE
    only: case-sensitive) read the whole text, as Presidio does."""
    windowed = UsSsnRecognizer()
    assert read_only_around_digits(windowed, PatternRecognizer)
    text = "ssn 078-05-1120 " + "x" * 200 + " and 219-09-9999"
    vanilla = UsSsnRecognizer()
    both = [r.analyze(text, ["US_SSN"], regex_flags=re.MULTILINE) for r in (vanilla, windowed)]
    expected, got = (sorted((r.start, r.end, r.score) for r in results) for results in both)
    assert expected and got == expected
