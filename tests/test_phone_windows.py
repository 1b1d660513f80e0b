"""The phone recognizer's shortcuts (digit windows, regions skipped for short numbers, candidates
too short for a region not parsed, numbers with a plus sign parsed once for all regions) find
exactly what Presidio's own phone recognizer finds."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from redaction.recognizers import fewest_digits, shortest_national_input, windowed_phone_recognizer

REGIONS = PhoneRecognizer.DEFAULT_SUPPORTED_REGIONS


def _example_numbers() -> list[str]:
    """python-phonenumbers' own example numbers of every type for the recognizer's regions, in the
    national, international and E.164 forms (reserved examples, nobody's number)."""
    out = []
    for region in REGIONS:
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                out += [phonenumbers.format_number(number, form) for form in PhoneNumberFormat.__dict__.values()
                        if isinstance(form, int)]  # fmt: skip
    return out


PIECES = [
    *_example_numbers(),
    "2024", "12345", "123456", "1234567", "20417", "0301234", "011 44 20 7946 0958", "00 49 30 123456",
    "0049 30 1234567", "+49 30 1234", "\uff0b44 20 7946 0958", "1 650 253 0000", "(212) 555-0147",
    "03-1234567", "ext. 1234", "v2.4", "10:30", "1-800-555-0199", " ", " ", ", ", "call ", "tel: ", "(", ")",
    "-", ".", "/", "+", "x", "Order ", "in ", "room ", "\n", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
    "0044", "1111", "(0)", "+1 212 555 0147 ", "+00 49 30 123456", "++44 20 7946 0958", "+33 1 42 68 53 00",
    "int.1", "41 31456int.1", "352int.1", " ext.", "int", "ext 5", "extn", "anexo", "Ext. 7", "1x2x3x4", "flowers",
    "41 31456", "352", "12", "\u017f", "\u0131",
]  # fmt: skip


def _both(**settings: object) -> tuple[PhoneRecognizer, PhoneRecognizer]:
    """Presidio's phone recognizer and the windowed one, with the same settings."""
    settings = {"supported_language": "en", **settings}
    return PhoneRecognizer(**settings), windowed_phone_recognizer(PhoneRecognizer)(**settings)


def _found(recognizer: PhoneRecognizer, text: str) -> list[tuple]:
    results = recognizer.analyze(text, ["PHONE_NUMBER"], None)
    return sorted((r.entity_type, r.start, r.end, r.score) for r in results)


@pytest.mark.parametrize("seed", range(4))
def test_windows_and_skipped_regions_find_what_presidio_finds(seed: int):
    vanilla, windowed = _both()
    rng = random.Random(seed)
    found_any = 0
    for _ in range(150):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8)))
        expected = _found(vanilla, text)
        assert _found(windowed, text) == expected, text
        found_any += bool(expected)
    assert found_any > 30  # the texts really hold phone numbers


def test_a_short_number_is_read_for_the_regions_whose_numbers_can_be_that_short():
    assert fewest_digits("DE") == 4  # German numbers from 4 digits: "in 2024" is still read for DE
    assert all(fewest_digits(region) >= 7 for region in REGIONS if region != "DE")
    assert fewest_digits("ZZ") > 100  # an unknown region reads numbers with a plus sign only


def test_the_shortest_national_input_is_what_the_metadata_says():
    every = [PhoneMetadata.metadata_for_region(region) for region in phonenumbers.SUPPORTED_REGIONS]
    every += [PhoneMetadata.metadata_for_nongeo_region(code) for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS]
    lengths = [length for metadata in every for length in metadata.general_desc.possible_length if length > 0]
    assert shortest_national_input() == min(lengths) == 4


@pytest.mark.parametrize(
    ("region", "text"),
    [("SM", "call 891234 today"), ("AG", "call 460-1234 today"), ("NF", "call 06609 x")],
)
def test_a_region_whose_prefix_transform_adds_digits_reads_its_shorter_numbers(region: str, text: str):
    """San Marino's "891234" is "0549 891234" once its prefix transform adds "0549": a number
    shorter than any length the metadata lists, which the windows and skipped regions must read."""
    vanilla, windowed = _both(supported_regions=(region,))
    expected = _found(vanilla, text)
    assert expected  # python-phonenumbers does find it
    assert _found(windowed, text) == expected


@pytest.mark.parametrize("text", ["call 41 31456int.1 now", "call 352int.1 now", "call 41 31456 INT.1 now"])
def test_letters_that_python_phonenumbers_reads_as_keypad_digits_count(text: str):
    """Three letters in a candidate (an extension label's) make it a keypad number: "352int"
    is 352468, a German number, though it has only three digits."""
    vanilla, windowed = _both()
    expected = _found(vanilla, text)
    assert expected
    assert _found(windowed, text) == expected


def test_a_lenient_recognizer_reads_the_whole_text():
    """Merely possible numbers (leniency 0) may be shorter than any valid one: Presidio's own way."""
    vanilla, windowed = _both(leniency=0)
    text = "dial 555 0147 or 12 34 56"
    assert _found(windowed, text) == _found(vanilla, text)


def test_a_plus_sign_without_a_country_code_is_still_read_per_region():
    """ "+00 49 30 123456": no country code follows the sign, so python-phonenumbers reads the
    region's call prefix instead (00 in Germany, not in the US): its outcome differs by region."""
    vanilla, windowed = _both()
    text = "fax +00 49 30 123456 or +1 212 555 0147"
    assert _found(windowed, text) == _found(vanilla, text)
    assert [(start, end) for _, start, end, _ in _found(windowed, text)] == [(4, 20), (24, 39)]


@pytest.mark.parametrize(
    ("text", "regions"),
    [
        ("the order 20417 shipped with boxes", ("DE",)),  # words after numbers are no extension
        ("call 35int.1 now", ("DE",)),  # "int" and its digit: 2 + 3 + 1 may be read as digits
        ("no digits at all, only prose", ()),
        ("dial 0301234567 today", tuple(REGIONS)),
    ],
)
def test_a_window_is_read_only_for_the_regions_whose_numbers_fit_in_it(text: str, regions: tuple, monkeypatch):
    windowed = windowed_phone_recognizer(PhoneRecognizer)(supported_language="en")
    read: list[str] = []
    original = type(windowed)._analyze_window

    def spy(self, window: str, window_regions: tuple[str, ...]):
        read.extend(window_regions)
        return original(self, window, window_regions)

    monkeypatch.setattr(type(windowed), "_analyze_window", spy)
    windowed.analyze(text, ["PHONE_NUMBER"], None)
    assert sorted(set(read)) == sorted(regions)


@pytest.mark.parametrize(
    ("text", "regions"),
    [
        ("tel 06\uff0f12\uff0f34\uff0f56\uff0f78 ok", ("FR",)),  # fullwidth slashes between the groups
        ("call 20\u223c15\u223c55\u223c01\u223c23 now", REGIONS),  # tilde operators
        ("\uff12\uff10\uff0f\uff11\uff15\uff0f\uff15\uff15\uff0f\uff10\uff11\uff0f\uff12\uff13", ("FR", "US")),
        ("7#" + " " * 24 + "0 20 7946 0958", ("GB",)),  # "7#...0" is one candidate: "0" is its extension
        ("Room 7 x" + " " * 24 + "0 20 7946 0958", ("GB",)),
        ("7 ~" + " " * 24 + "1 201 555 0123", ("US",)),
        ("1 x" + " " * 30 + "0 30 123456", REGIONS),
    ],
)
def test_separators_and_extensions_are_read_as_python_phonenumbers_reads_them(text: str, regions: tuple):
    """Found by fuzzing: a run cut by separators python-phonenumbers accepts (its punctuation, read
    case-insensitively) got no window; a window beginning in an extension's spaces read a number
    that, over the whole text, the extension had swallowed the first digit of."""
    vanilla, windowed = _both(supported_regions=regions)
    assert _found(windowed, text) == _found(vanilla, text)
