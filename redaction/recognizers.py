"""Recognizers that skip, cheaply, the text where they cannot match.

Presidio's phone recognizer runs python-phonenumbers' matcher over the whole text once per
region (eight of them): about 70% of all pattern-matching time. A phone number needs digits, so
the matcher only reads windows around runs of digits (with margins, so its checks of the
characters around a number see the same text); prose without digits costs nothing.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts

# digits, possibly separated by the characters phone numbers are written with
# (the separators python-phonenumbers accepts: its punctuation, dashes and tildes included)
_DIGIT_RUN = re.compile(r"\d(?:[\d\s().\-/+~\[\]x\u2010-\u2015\u2212\u30fc\uff0d\u00ad\u200b\u2060\u3000]{0,4}\d)*")
MARGIN = 24  # characters kept on each side of a run
# the fewest digits of a valid number in Presidio's default regions (US, UK, DE, FE, IL, IN, CA,
# BR): 4, in Germany; shorter runs ("room 4.12", "10:30") cannot be phone numbers
MIN_DIGITS = 4


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
                for result in super().analyze(text[start:end], entities, None):
                    result.start += start
                    result.end += start
                    results.append(result)
            return base.remove_duplicates(results)

    return WindowedPhoneRecognizer
