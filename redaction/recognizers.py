"""Recognizers that skip, cheaply, the text where they cannot match.

Presidio's phone recognizer runs python-phonenumbers' matcher over the whole text once per
region (eight of them): about 70% of all pattern-matching time. A phone number needs digits, so
the matcher only reads windows around runs of digits (with margins, so its checks of the
characters around a number see the same text); prose without digits costs nothing. And a window
with too few digits to be a valid number of a region skips that region's matcher: "order 20417"
or "in 2024" is read for Germany (numbers from 4 digits) and not for the seven other regions.
Letters count as digits here, since python-phonenumbers reads a candidate with three letters as
a keypad number (an extension label's: "352int.1"). Inside a window, the same holds for each
candidate the matcher parses: a card number's groups ("4111", "0044") are not parsed for the
regions whose numbers are longer, and a number written with a plus sign and a country code is
parsed once, not once per region (a 200 B prompt with a phone, a card and an IBAN: 7.4 -> 2.6
ms).

Presidio's URL recognizer tries four long patterns (hundreds of top-level domains) at every
position: ~1.4 ms for 2 KB. Every URL they match has a dot followed by a top-level domain, which
begins with a letter, and never spans a space: they run only over the space-free stretches that
hold a dot before a letter ("example.com", "e.g."), usually none or a few words.

The card, SSN, licence, passport... recognizers' patterns all need a digit and are of bounded
length: they read only windows around the text's digits (``read_only_around_digits``, which
reads that premise from each pattern and leaves any other recognizer alone).
"""

from __future__ import annotations

import bisect
import functools
import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts

# what python-phonenumbers' matcher may read before a number's first digit: up to two opening
# brackets or plus signs, each followed by up to four separators
_LEAD = 10
_ALNUM = re.compile(r"[^\W_]")  # what python-phonenumbers may read as a digit: digits and letters
MARGIN = 24  # characters kept on each side of a run
PLUS_SIGNS = ("+", "\uff0b")  # the plus signs python-phonenumbers reads as "international"


@functools.cache
def fewest_digits(region: str) -> int:
    """The fewest digits a window needs, without a plus sign, for the ``region`` matcher to find a
    valid number in it (python-phonenumbers' own metadata). Written nationally, the number's
    national part, after the region's prefix transform (which may add digits: "0549" in San
    Marino), must have a length some region of its country code accepts; written with the region's
    international call prefix (011, 00...), the prefix, a country code and the shortest national
    input anywhere must fit. An unknown region reads only numbers with a plus sign."""
    import phonenumbers
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata

    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return sys.maxsize
    code = phonenumbers.country_code_for_region(region)
    national = _shortest_length(COUNTRY_CODE_TO_REGION_CODE.get(code, (region,)), code) - _digits_added(metadata)
    prefix = metadata.international_prefix
    international = (_min_width(prefix) if prefix else 0) + 1 + shortest_national_input()
    return max(1, min(national, international))


@functools.cache
def shortest_national_input() -> int:
    """The fewest digits after a country code that any number, anywhere, can be written with: the
    shortest length its country code's regions accept, less what the country's prefix transform
    adds (4, in Germany and a few others)."""
    import phonenumbers
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

    return min(
        _shortest_length(regions, code) - _digits_added(_metadata_for_code(code))
        for code, regions in COUNTRY_CODE_TO_REGION_CODE.items()
        if phonenumbers.region_code_for_country_code(code) != "ZZ"
    )


def _metadata_for_code(code: int):  # type: ignore[no-untyped-def]
    """The metadata python-phonenumbers parses a country code's national numbers with."""
    import phonenumbers
    from phonenumbers import PhoneMetadata

    main = phonenumbers.region_code_for_country_code(code)
    if main == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return PhoneMetadata.metadata_for_nongeo_region(code)
    return PhoneMetadata.metadata_for_region(main)


def _shortest_length(regions: tuple[str, ...], code: int) -> int:
    """The shortest national number length any of a country code's regions accepts."""
    from phonenumbers import PhoneMetadata

    every = [PhoneMetadata.metadata_for_region(region) for region in regions]
    every.append(PhoneMetadata.metadata_for_nongeo_region(code))
    lengths = [n for metadata in every if metadata is not None for n in metadata.general_desc.possible_length if n > 0]
    return min(lengths, default=1)


def _digits_added(metadata: object) -> int:
    """At most how many digits the metadata's national prefix transform adds to a number: its
    literal digits (what it keeps of the number, its group references, was in the number)."""
    rule = getattr(metadata, "national_prefix_transform_rule", None) or ""
    return len(re.findall(r"\d", re.sub(r"\\\d", "", rule)))


@functools.cache
def fewest_for_any(regions: tuple[str, ...]) -> int:
    """The fewest digits (and letters) a valid number of any of ``regions`` has, written with or
    without a plus sign: less, and a stretch of text holds no phone number for them."""
    return min((1 + shortest_national_input(), *(fewest_digits(region) for region in regions)))


def _min_width(pattern: str) -> int:
    """The fewest characters a regular expression matches (here: digits of a call prefix)."""
    return re._parser.parse(pattern).getwidth()[0]  # type: ignore[attr-defined]


@functools.cache
def _extension() -> re.Pattern[str]:
    """What python-phonenumbers' matcher takes, right after a number, as its extension: its label
    ("ext", "int", "anexo"...) is the only place a candidate holds letters besides "x", and three
    letters make python-phonenumbers read the candidate as a keypad number ("352int.1")."""
    from phonenumbers import phonenumberutil

    pattern = getattr(phonenumberutil, "_EXTN_PATTERNS_FOR_MATCHING", None)
    if not isinstance(pattern, str):  # another version: any letters after a number may count
        return re.compile(r"[^\w\n]{0,4}[^\W_]+")
    return re.compile(pattern, getattr(phonenumberutil, "_REGEX_FLAGS", re.UNICODE | re.IGNORECASE))


@functools.cache
def _digit_run() -> re.Pattern[str]:
    """Digits, possibly separated by up to four of the characters python-phonenumbers' matcher
    reads between a number's digit groups (its own punctuation, read case-insensitively as it
    does: fullwidth slashes, swung dashes, "X"...), spaces and plus signs."""
    from phonenumbers import phonenumberutil

    punctuation = getattr(phonenumberutil, "_VALID_PUNCTUATION", None)
    if not isinstance(punctuation, str):  # another version: anything but letters and digits
        return re.compile(r"\d(?:[\W_xX]{0,4}\d)*")
    # its punctuation first, as python-phonenumbers writes the class (a leading "-" is literal)
    return re.compile(r"\d(?:[" + punctuation + r"\s+]{0,4}\d)*", re.IGNORECASE)


def _runs(text: str) -> Iterator[tuple[int, int, int]]:
    """(start, end, weight) of every run of digits with the extension right after it; the weight
    counts what python-phonenumbers may read as digits there (digits, and letters)."""
    position = 0
    while (run := _digit_run().search(text, position)) is not None:
        end, weight = run.end(), len(_ALNUM.findall(run.group(0)))
        extension = _extension().match(text, end)
        if extension is not None:  # its digits are counted here, not again as a run of their own
            end, weight = extension.end(), weight + len(_ALNUM.findall(extension.group(0)))
        yield run.start(), end, weight
        position = end


def window_weight(window: str) -> int:
    """What a window holds that python-phonenumbers may read as digits: no number in it is longer."""
    return sum(weight for _, _, weight in _runs(window))


def digit_windows(text: str, fewest: int, margin: int = MARGIN) -> list[tuple[int, int]]:
    """Merged (start, end) windows around every run that may hold ``fewest`` digits or more.

    A window never begins inside what the matcher may read as one candidate, a run with its lead
    and its extension, however short: an extension's spaces are unbounded, so in "7#" + 24 spaces
    + "0 20 7946 0958" the matcher reads "7#...0" as one candidate, and a window beginning in its
    spaces would read "0 20 7946 0958" as a number of its own. Its end needs no such care: a run
    too short to be a number, cut, is shorter still."""
    spans = list(_runs(text))
    starts = [span_start for span_start, _, _ in spans]
    windows: list[tuple[int, int]] = []
    for run_start, run_end, weight in spans:
        if weight < fewest:
            continue
        start = _before_candidates(spans, starts, max(0, run_start - margin), margin)
        end = min(len(text), run_end + margin)
        while windows and start <= windows[-1][1]:  # a start moved back may reach earlier windows
            previous_start, previous_end = windows.pop()
            start, end = min(start, previous_start), max(end, previous_end)
        windows.append((start, end))
    return windows


def _before_candidates(spans: list[tuple[int, int, int]], starts: list[int], start: int, margin: int) -> int:
    """``start``, moved back before (by ``margin``) every span it falls inside or in the lead of."""
    while (index := bisect.bisect_left(starts, start + _LEAD) - 1) >= 0:
        span_start, span_end, _ = spans[index]
        moved = max(0, span_start - margin)
        if start >= span_end or moved >= start:
            break
        start = moved
    return start


def windowed_phone_recognizer(base):
    """A subclass of Presidio's PhoneRecognizer (``base``) that reads only digit windows.

    Its findings are Presidio's, with one difference, on the safe side: python-phonenumbers'
    matcher gives up after 65,535 failed candidates in a text (per region), and each window
    starts that count afresh, so a number after that many digit groups is still found."""

    class WindowedPhoneRecognizer(base):
        def analyze(
            self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
        ) -> list[RecognizerResult]:
            if self.leniency < _VALID:  # the premises hold for valid numbers, not merely possible ones
                return super().analyze(text, entities, nlp_artifacts)
            results = []
            for start, end in digit_windows(text, fewest_for_any(tuple(self.supported_regions))):
                window = text[start:end]
                regions = self.supported_regions
                if not any(sign in window for sign in PLUS_SIGNS):
                    weight = window_weight(window)
                    regions = tuple(r for r in regions if weight >= fewest_digits(r))
                for result in self._analyze_window(window, regions):
                    result.start += start
                    result.end += start
                    results.append(result)
            return base.remove_duplicates(results)

        def _analyze_window(self, window: str, regions: tuple[str, ...]) -> list[RecognizerResult]:
            """Presidio's own analyze (a matcher per region, a result per match), with the
            matcher that parses less."""
            import phonenumbers

            results = []
            shared: dict[tuple[int, str], object] = {}  # outcomes the regions' matchers share
            for region in regions:
                for match in _pruning_matcher()(window, region, self.leniency, shared):
                    try:  # the region the number belongs to names the result, as in Presidio
                        named = phonenumbers.region_code_for_number(phonenumbers.parse(match.raw_string))
                    except phonenumbers.NumberParseException:
                        named = region
                    results.append(self._get_recognizer_result(match, window, named, None))
            return base.remove_duplicates(results)

    return WindowedPhoneRecognizer


_UNSEEN, _PER_REGION = object(), object()
_VALID = 1  # python-phonenumbers' Leniency.VALID, Presidio's default


@functools.cache
def _pruning_matcher() -> type:
    """python-phonenumbers' matcher, which parses every candidate it finds for its region (and,
    when that fails, the groups inside it): ~35-100 us each, eight regions per window. Two kinds of
    candidate are not parsed again and again, with the same outcome:

    - without a plus sign and with fewer digits and letters than ``fewest_digits(region)``: it
      cannot be a valid number there and fails at once, as parsing would have made it fail (the
      letters count: a candidate with three letters, an extension label's "int" in
      "41 31456int.1", is read as a keypad number);
    - beginning with a plus sign followed by a country code: the number and its checks are the
      same for every region (a region's call prefix is read only when no country code follows the
      sign, as in "+00 49 ..."), so the first region's outcome is shared with the others.
    """
    import phonenumbers

    class PruningMatcher(phonenumbers.PhoneNumberMatcher):
        def __init__(self, text: str, region: str, leniency: int, shared: dict[tuple[int, str], object]) -> None:
            super().__init__(text, region, leniency=leniency)
            self._shared = shared  # this window's matchers, one per region

        def _parse_and_verify(self, candidate: str, offset: int):  # type: ignore[no-untyped-def]
            if candidate.startswith(PLUS_SIGNS):
                key = (offset, candidate)
                outcome = self._shared.get(key, _UNSEEN)
                if outcome is _UNSEEN:
                    outcome = super()._parse_and_verify(candidate, offset)
                    self._shared[key] = outcome if _country_code_follows_plus(candidate) else _PER_REGION
                elif outcome is _PER_REGION:
                    outcome = super()._parse_and_verify(candidate, offset)
                return outcome
            if not any(sign in candidate for sign in PLUS_SIGNS) and len(_ALNUM.findall(candidate)) < fewest_digits(
                self.preferred_region
            ):
                return None
            return super()._parse_and_verify(candidate, offset)

    return PruningMatcher


def _country_code_follows_plus(candidate: str) -> bool:
    """Whether python-phonenumbers reads a country code right after the plus sign: parsed without
    a region, it fails for want of one only when it would fall back to a region's call prefix."""
    import phonenumbers

    try:
        phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException as exc:
        return exc.error_type != phonenumbers.NumberParseException.INVALID_COUNTRY_CODE
    return True


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


# --- pattern recognizers whose every match holds a digit

_CONTEXT_FREE_ANCHORS = ("AT_BOUNDARY", "AT_NON_BOUNDARY")  # \b, \B: read one character around
# Python's re parses Presidio's patterns for the premise; Presidio matches them with the regex
# module. Syntax the two read differently (POSIX classes, nested sets and set operations, fuzzy
# matching) and flags only regex knows keep Presidio's own scan.
_READ_ALIKE_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.UNICODE
_READ_DIFFERENTLY = re.compile(r"\[:|\[\[|&&|\|\||~~|--|\{(?![\d,])")


@functools.cache
def _any_digit() -> object:
    r"""``\d`` as Presidio's engine reads it: the regex module's Unicode tables may be newer than
    Python's (Kawi digits, U+11F50..., are digits to it and not to Python 3.11's re)."""
    import regex

    return regex.compile(r"\d")


def _requires_digit(items: list) -> bool:
    """Whether every match of a parsed regex sequence contains a decimal digit."""
    return any(_item_requires_digit(op, av) for op, av in items)


def _item_requires_digit(op: object, av: object) -> bool:
    from re import _constants as c  # type: ignore[attr-defined]

    if op is c.LITERAL:
        return chr(av).isdecimal()  # type: ignore[arg-type]
    if op is c.IN:
        return all(
            (o is c.LITERAL and chr(a).isdecimal())
            or (o is c.RANGE and a[0] >= 0x30 and a[1] <= 0x39)
            or (o is c.CATEGORY and a is c.CATEGORY_DIGIT)
            for o, a in av  # type: ignore[attr-defined]
        )
    if op is c.SUBPATTERN:
        return _requires_digit(av[3])  # type: ignore[index]
    if op is c.BRANCH:
        return all(_requires_digit(branch) for branch in av[1])  # type: ignore[index]
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        return av[0] >= 1 and _requires_digit(av[2])  # type: ignore[index]
    if op is c.ATOMIC_GROUP:
        return _requires_digit(av)  # type: ignore[arg-type]
    return False


def _children(op: object, av: object) -> list[list]:
    """The parsed sequences directly inside one regex node (a look-around's body included)."""
    from re import _constants as c  # type: ignore[attr-defined]

    if op is c.SUBPATTERN:
        return [av[3]]  # type: ignore[index]
    if op is c.BRANCH:
        return list(av[1])  # type: ignore[index]
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
        return [av[2]]  # type: ignore[index]
    if op in (c.ASSERT, c.ASSERT_NOT):
        return [av[1].data]  # type: ignore[index]
    if op is c.ATOMIC_GROUP:
        return [av]  # type: ignore[list-item]
    return []


def _nodes(items: list) -> Iterator[tuple[object, object]]:
    """Every node of a parsed regex sequence, nested ones included."""
    for op, av in items:
        yield op, av
        for child in _children(op, av):
            yield from _nodes(child)


def digit_margin(pattern: str, flags: int) -> int | None:
    """How far around a digit a match of ``pattern`` and what it reads can reach: its longest
    match plus its longest look-around plus one (``\\b``); None when a match may hold no digit, may
    be unbounded, or depends on where a line or the text begins (``^``, ``$``)."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]

    if flags & ~_READ_ALIKE_FLAGS or _READ_DIFFERENTLY.search(pattern):
        return None
    try:
        tree = _parser.parse(pattern, flags)
    except Exception:  # re cannot read it: Presidio's own scan
        return None
    longest = tree.getwidth()[1]
    if not _requires_digit(tree.data) or longest >= c.MAXREPEAT:
        return None
    if any(op is c.AT and str(av) not in _CONTEXT_FREE_ANCHORS for op, av in _nodes(tree.data)):
        return None
    reach = _look_reach(tree.data)
    return None if reach >= c.MAXREPEAT else longest + reach + 1


def _look_reach(items: list) -> int:
    """How far beyond a match the look-arounds of a parsed sequence may read: the widest one,
    each counted with the reach of the look-arounds nested in it."""
    from re import _constants as c  # type: ignore[attr-defined]

    reach = 0
    for op, av in items:
        if op in (c.ASSERT, c.ASSERT_NOT):
            reach = max(reach, av[1].getwidth()[1] + _look_reach(av[1].data))  # type: ignore[index]
        else:
            reach = max([reach, *(_look_reach(child) for child in _children(op, av))])
    return reach


def windows_around_digits(text: str, margin: int) -> list[tuple[int, int]]:
    """Merged (start, end) windows reaching ``margin`` characters beyond every digit of ``text``."""
    windows: list[tuple[int, int]] = []
    for match in _any_digit().finditer(text):  # type: ignore[attr-defined]
        start, end = max(0, match.start() - margin), min(len(text), match.end() + margin)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def read_only_around_digits(recognizer: object, pattern_recognizer: type) -> bool:
    """Make a Presidio ``PatternRecognizer`` whose every match holds a digit (card, SSN, licence,
    passport... numbers) read only windows around the text's digits. Each window reaches beyond
    every digit in it by the longest match plus the longest look-around, so every match and all
    it reads lie inside one window, and no match can begin outside one: the same matches as over
    the whole text (tested against Presidio's recognizers). False (unchanged) for a recognizer
    whose patterns do not allow it, or that has its own ``analyze`` or a deny list."""
    if type(recognizer).analyze is not pattern_recognizer.analyze or getattr(recognizer, "deny_list", None):
        return False
    patterns = getattr(recognizer, "patterns", None) or []
    flags = recognizer.global_regex_flags  # type: ignore[attr-defined]
    margins = [digit_margin(pattern.regex, flags) for pattern in patterns]
    if not patterns or None in margins:
        return False
    margin = max(margins)  # type: ignore[type-var]
    analyze = recognizer.analyze  # type: ignore[attr-defined]

    def analyze_around_digits(
        text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None, regex_flags: int | None = None
    ) -> list[RecognizerResult]:
        if regex_flags and regex_flags != flags:  # the premise was read with the recognizer's flags
            return analyze(text, entities, nlp_artifacts, regex_flags)
        results = []
        for start, end in windows_around_digits(text, margin):
            for result in analyze(text[start:end], entities, nlp_artifacts, regex_flags):
                result.start += start
                result.end += start
                results.append(result)
        return pattern_recognizer.remove_duplicates(results)  # as Presidio ends its own analyze

    recognizer.analyze = analyze_around_digits  # type: ignore[attr-defined]
    return True
