"""Recognizers that skip, cheaply, the text where they cannot match.

Presidio's phone recognizer runs python-phonenumbers' matcher over the whole text once per
region (eight of them): about 70% of all pattern-matching time. A phone number needs digits, so
the matcher only reads windows around runs of digits (with margins, so its checks of the
characters around a number see the same text); prose without digits costs nothing. And a window
with too few digits to be a valid number of a region skips that region's matcher: "order 20417"
or "in 2024" is read for Germany (numbers from 4 digits) and not for the seven other regions.

Presidio's URL recognizer tries four long patterns (hundreds of top-level domains) at every
position: ~1.4 ms for 2 KB. Every URL they match has a dot followed by a top-level domain, which
begins with a letter, and never spans a space: they run only over the space-free stretches that
hold a dot before a letter ("example.com", "e.g."), usually none or a few words.
"""

from __future__ import annotations

import functools
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts

# digits, possibly separated by the characters phone numbers are written with
# (the separators python-phonenumbers accepts: its punctuation, dashes and tildes included)
_DIGIT_RUN = re.compile(r"\d(?:[\d\s().\-/+~\[\]x\u2010-\u2015\u2212\u30fc\uff0d\u00ad\u200b\u2060\u3000]{0,4}\d)*")
MARGIN = 24  # characters kept on each side of a run
# the fewest digits of a valid number in Presidio's default regions (US, GB, DE, FR, IL, IN, CA,
# BR): 4, in Germany; shorter runs ("room 4.12", "10:30") cannot be phone numbers
MIN_DIGITS = 4
PLUS_SIGNS = ("+", "\uff0b")  # the plus signs python-phonenumbers reads as "international"
_DECIMAL = re.compile(r"\d")  # the digits python-phonenumbers normalises (Unicode Nd)


@functools.cache
def fewest_digits(region: str) -> int:
    """The fewest digits a window needs, without a plus sign, for the ``region`` matcher to find a
    valid number in it (python-phonenumbers' own metadata). Written nationally, the number's
    national part has at most the window's digits and must have a length some region of its
    country code accepts; written with the region's international call prefix (011, 00...), the
    prefix, a country code and the shortest national number anywhere (4) must fit. An unknown
    region reads only numbers with a plus sign."""
    import phonenumbers
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return sys.maxsize
    siblings = COUNTRY_CODE_TO_REGION_CODE.get(phonenumbers.country_code_for_region(region), (region,))
    lengths = [
        length
        for sibling in siblings
        if (sibling_metadata := PhoneMetadata.metadata_for_region(sibling)) is not None
        for length in sibling_metadata.general_desc.possible_length
        if length > 0
    ]
    national = min(lengths, default=1)
    prefix = metadata.international_prefix
    international = (_min_width(prefix) if prefix else 0) + 1 + _SHORTEST_NATIONAL_NUMBER
    return min(national, international)


_SHORTEST_NATIONAL_NUMBER = 4  # the least possible length in all of python-phonenumbers' metadata


def _min_width(pattern: str) -> int:
    """The fewest characters a regular expression matches (here: digits of a call prefix)."""
    return re._parser.parse(pattern).getwidth()[0]  # type: ignore[attr-defined]


def digit_windows(text: str, margin: int = MARGIN) -> list[tuple[int, int]]:
    """Merged (start, end) windows around every run of MIN_DIGITS or more digits."""
    windows: list[tuple[int, int]] = []
    for match in _DIGIT_RUN.finditer(text):
        if sum(char.isdigit() for char in match.group(0)) < MIN_DIGITS:
            continue
        start, end = max(0, match.start() - margin), min(len(text), match.end() + margin)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], end))
        else:
            windows.append((start, end))
    return windows


def windowed_phone_recognizer(base):
    """A subclass of Presidio's PhoneRecognizer (``base``) that reads only digit windows."""

    class WindowedPhoneRecognizer(base):
        def analyze(
            self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
        ) -> list[RecognizerResult]:
            results = []
            for start, end in digit_windows(text):
                window = text[start:end]
                regions = self.supported_regions
                if not any(sign in window for sign in PLUS_SIGNS):
                    digits = len(_DECIMAL.findall(window))
                    regions = tuple(r for r in regions if digits >= fewest_digits(r))
                # Presidio's own analyze, run for these regions only
                for result in base.analyze(_WithRegions(self, regions), window, entities, None):
                    result.start += start
                    result.end += start
                    results.append(result)
            return base.remove_duplicates(results)

    return WindowedPhoneRecognizer


class _WithRegions:
    """A recognizer seen with other ``supported_regions`` (its results still name it, so that
    context words enhance them as before); the recognizer itself is left unchanged."""

    def __init__(self, recognizer: object, regions: tuple[str, ...]) -> None:
        self._recognizer = recognizer
        self.supported_regions = regions

    def __getattr__(self, name: str) -> object:
        return getattr(self._recognizer, name)


# every match of Presidio's URL patterns has "[.]" then a top-level domain, which begins with a
# letter (checked against Presidio's patterns in tests/test_recognizer_skips.py); any letter here,
# so that case-insensitive matching of other scripts' letters is covered too
URL_NEEDS = re.compile(r"[.][^\W\d_]")
# no URL match contains these (nor does any regex engine disagree that they are spaces)
_WITHOUT_SPACES = re.compile(r"[^ \t\n\r\f\v]+")


def url_recognizer_that_skips(base):
    """A subclass of Presidio's UrlRecognizer (``base``) that runs its patterns only over the
    space-free stretches of text that hold a dot before a letter (a URL never spans a space)."""

    class UrlRecognizerThatSkips(base):
        def analyze(
            self,
            text: str,
            entities: list[str],
            nlp_artifacts: NlpArtifacts | None = None,
            regex_flags: int | None = None,
        ) -> list[RecognizerResult]:
            if self.deny_list:  # deny-listed words need no dot: Presidio's own way
                return super().analyze(text, entities, nlp_artifacts, regex_flags)
            results = []
            for stretch in _WITHOUT_SPACES.finditer(text):
                start, end = stretch.span()
                if URL_NEEDS.search(text, start, end) is None:
                    continue
                for result in super().analyze(stretch.group(0), entities, nlp_artifacts, regex_flags):
                    result.start += start
                    result.end += start
                    results.append(result)
            return base.remove_duplicates(results)

    return UrlRecognizerThatSkips
