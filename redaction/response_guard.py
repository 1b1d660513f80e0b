"""Personal data the model itself produces: found in the answer and redacted, streams included.

The caller's own values come back through their placeholders; a value the caller never sent
(memorised, or planted by a prompt injection) is replaced by ``<TYPE_REDACTED>``. Structured
types are found with validated patterns, in-process and fast (no NER on the response path).

Streams: the guard sees each field as one continuous text. It emits text as soon as it cannot be
part of a value any more and holds back only a tail that could still grow into one (at most
``MAX_HOLD`` characters), so it never emits the start of a value and redacts the rest later.
Before matching it reads a decoded view (percent-encoding, ``\\uXXXX`` escapes, HTML character
references, zero-width characters, full-width and other compatibility forms).

Other types (PERSON, LOCATION, any type the detector knows) are optional and cost a detector
round trip per checked piece plus a hold until the end of each sentence: see ``response_ner``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redaction.answer_view import DASHES, decoded_view, extend_to_encoding
from redaction.errors import DetectorUnavailable, RedactionError
from redaction.match_sites import MatchSites
from redaction.response_ner import Detect, ner_findings, sentence_cut
from redaction.spans import Span

# Longest tail held back while it could still be (part of) a value, in characters of the answer.
MAX_HOLD = 96
# ...except an e-mail address being written (an "@" in the last word): up to its longest form
# (a 64-character local part and a long domain), so its start never leaves before the rest
MAX_EMAIL_HOLD = 320

# the local part is bounded (64, as in RFC 5321) so that a long run without "@" stays linear
_EMAIL = r"(?<![\w.%+\-])[\w.%+\-]{1,64}@[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}"  # Unicode too (IDN)
_CARD = r"(?<!\d)(?:\d[ \-]?){12,18}\d(?!\d)"
_IBAN = r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])"
_SSN = r"(?<!\d)(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4})(?!\d)"
_PHONE = (
    r"(?<![\d+])(?:"
    r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,5}\)[ .\-]?|\d{2,5}[ .\-])\d{3,4}[ .\-]?\d{3,4}"
    r"|\+\d{8,15}"  # international, no separators
    r"|\+\d{1,3}(?:[ .\-]\d{1,4}){3,6}"  # international in short groups: +33 1 42 68 53 00
    r"|0\d(?:[ .\-]\d{2}){4}"  # national in pairs: 01 42 68 53 00
    r"|[2-9]\d{2}[2-9]\d{6}"  # North American, ten digits
    r")(?!\d|\.\d)"
)
_IPV4 = r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d|\.\d)"
# addresses that identify nobody: loopback, unspecified, netmasks and broadcast
_NOT_PERSONAL_IPS = re.compile(r"127\..*|0\.0\.0\.0|255\..*")

PATTERNS: dict[str, re.Pattern[str]] = {
    "EMAIL_ADDRESS": re.compile(_EMAIL),
    "CREDIT_CARD": re.compile(_CARD),
    "IBAN_CODE": re.compile(_IBAN),
    "US_SSN": re.compile(_SSN),
    "PHONE_NUMBER": re.compile(_PHONE),
    "IP_ADDRESS": re.compile(_IPV4),
}
STRUCTURED_TYPES = tuple(PATTERNS)
# Python's re tries these patterns at every position of the text (~1 ms for 2 KB, all six):
# they only run where they can match. Card, SSN, phone and IPv4 matches are digits with at most
# two other characters between digit runs ("+1 (212) 555"), starting at most one character
# before the first digit ("+" or "("): each runs only over merged digit runs, with the
# characters its lookarounds read (a lookbehind sees before ``pos``; ``endpos`` keeps two after).
# The fewest digits a valid value of each type has (a phone number: 8, see ``_valid``): a group of
# digit runs with fewer cannot hold one, so prose with "3 steps" or "version 2.4" costs nothing.
_MIN_DIGITS = {"CREDIT_CARD": 13, "US_SSN": 9, "PHONE_NUMBER": 8, "IP_ADDRESS": 4}
_DIGIT_TYPES = frozenset(_MIN_DIGITS)
_FEWEST_DIGITS = min(_MIN_DIGITS.values())
_NOT_WORD = re.compile(r"\W")
# a whitespace-separated group that can be part of a number written in groups (cards, phones, IBANs)
_NUMBER_GROUP = re.compile(r"[+(\[]*[\w()\-./]*\d[\w()\-./]*|[A-Z0-9]{1,6}")  # digits, or an IBAN's letters
# characters after which a value may still continue (a word ending otherwise is finished)
_CONTINUES_A_VALUE = re.compile(r"[\w.@%+\-()&#;\\/]")
_GROUP_OPENING = re.compile(r"[+(\-]+")  # "(" of "(415)" before its digits arrive


def _luhn(digits: str) -> bool:
    total, odd = 0, True
    for char in reversed(digits):
        n = int(char)
        if not odd:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
        odd = not odd
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def _valid(entity_type: str, text: str) -> bool:
    if entity_type == "PHONE_NUMBER":
        # with a country code from 8 digits, else from 10: "123 456 789" is a number, not a phone
        return (8 if text.startswith("+") else 10) <= sum(c.isdigit() for c in text) <= 15
    if entity_type == "IP_ADDRESS":
        return not _NOT_PERSONAL_IPS.fullmatch(text)
    if entity_type == "CREDIT_CARD":
        digits = re.sub(r"\D", "", text)
        return 13 <= len(digits) <= 19 and _luhn(digits)
    if entity_type == "IBAN_CODE":
        return _iban_valid(text)
    return True


# Token details repeat the answer's text token by token, where neither placeholder restoration nor
# the guard can follow it: with an active policy they are dropped from answers.
TOKEN_DETAIL_KEYS = frozenset({"logprobs", "top_logprobs"})


def drop_token_details(node: Any, policy: ResponsePolicy | None) -> None:
    """Empty every ``logprobs``/``top_logprobs`` list or object under ``node``, in place."""
    if policy is not None and policy.active:
        _drop_token_details(node)


def _drop_token_details(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(value, dict | list):
                continue  # most values are strings and numbers: nothing under them
            if key in TOKEN_DETAIL_KEYS:
                node[key] = [] if isinstance(value, list) else None
            else:
                _drop_token_details(value)
    elif isinstance(node, list):
        for item in node:
            _drop_token_details(item)


class AnswerBlocked(RedactionError):
    """The answer holds a value of a type the policy blocks; the message names the type only."""


@dataclass(frozen=True)
class ResponsePolicy:
    """What to do with personal data in answers that the caller did not send: redact it, or
    block the whole answer (types in both lists are blocked); any other type passes.

    Types without a pattern here are found by ``detect`` (the Presidio detector), which must
    then be given.
    """

    redact_types: tuple[str, ...] = STRUCTURED_TYPES
    block_types: tuple[str, ...] = ()
    detect: Detect | None = field(default=None, compare=False)

    @property
    def active(self) -> bool:
        return bool(self.redact_types or self.block_types)

    # computed once per policy (a policy lives as long as its upstream's settings): the guard
    # reads them for every stream event
    @functools.cached_property
    def types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.block_types, *self.redact_types)))

    @functools.cached_property
    def ner_types(self) -> tuple[str, ...]:
        """The types only the detector can find."""
        return tuple(t for t in self.types if t not in PATTERNS)

    @functools.cached_property
    def patterns(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        """(type, pattern) for the types found by pattern, in the order of ``types``."""
        return tuple((t, PATTERNS[t]) for t in self.types if t in PATTERNS)


_ALL_TYPES = ResponsePolicy()  # every structured type, found by pattern


@dataclass
class Finding:
    start: int
    end: int
    entity_type: str


class CallerValues:
    """The values the caller sent, which the model may write out as they are.

    Those the detector found come back through their placeholders. A structured value the request
    carried as it was (detection off, or one the detector did not report) went to the provider
    anyway and is the caller's own: the model repeating it is no leak, so it passes too. The
    request's texts are searched for such values only when an answer holds a candidate, and once
    per exchange.
    """

    __slots__ = ("_detected", "_forwarded", "_keys", "_values")

    def __init__(self, detected: Iterable[str] = (), forwarded: Sequence[str] = ()) -> None:
        self._detected = tuple(detected)
        self._forwarded = forwarded
        self._values: tuple[str, ...] | None = None
        self._keys: frozenset[str] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._values is None:
            unredacted = (value for text in self._forwarded for value in _structured_values(text))
            self._values = (*self._detected, *unredacted)
        return iter(self._values)

    def comparable_keys(self) -> frozenset[str]:
        """The values as compared with an answer's (``_comparable``)."""
        if self._keys is None:
            self._keys = frozenset(map(_comparable, self))
        return self._keys


def _structured_values(text: str) -> Iterator[str]:
    """Every valid structured value in ``text`` (of any type the guard has a pattern for)."""
    view, _index = decoded_view(text)
    sites = MatchSites(view, fewest_digits=_FEWEST_DIGITS)
    if _could_hold_values(view, sites):
        for _entity_type, _match, value in _valid_matches(view, sites, _ALL_TYPES.patterns):
            yield value


def _could_hold_values(view: str, sites: MatchSites) -> bool:
    """Every structured value has an "@" or digits (most pieces of a stream have neither)."""
    return bool("@" in view or sites.digit_groups() or sites.iban_starts())


def _valid_matches(
    view: str, sites: MatchSites, patterns: Iterable[tuple[str, re.Pattern[str]]]
) -> Iterator[tuple[str, re.Match[str], str]]:
    """(type, match, value) for each valid value of ``patterns`` in ``view``."""
    for entity_type, pattern in patterns:
        for match in _matches(entity_type, pattern, view, sites):
            value = match.group(0).strip()
            if value and _valid(entity_type, value):
                yield entity_type, match, value


def structured_spans(text: str) -> list[Span]:
    """Spans of every valid structured value in ``text`` (any type the guard has a pattern for),
    for texts the detector does not read (request headers)."""
    return [Span(f.start, f.end, f.entity_type, 1.0) for f in find_values(text, _ALL_TYPES, with_ner=False)]


def find_values(
    text: str, policy: ResponsePolicy, allowed: CallerValues | Iterable[str] = (), *, with_ner: bool = True
) -> list[Finding]:
    """Values in ``text`` (offsets in ``text``) that the caller did not send, found in its decoded
    view; ``with_ner=False``: structured types only (no detector call)."""
    view, index = decoded_view(text)
    callers_values = allowed if isinstance(allowed, CallerValues) else CallerValues(allowed)
    findings: list[Finding] = []
    callers: list[Finding] = []  # the caller's own values, written out by the model: they pass
    sites = MatchSites(view, fewest_digits=_FEWEST_DIGITS)
    patterns = policy.patterns if _could_hold_values(view, sites) else ()
    for entity_type, match, value in _valid_matches(view, sites, patterns):
        start = index[match.start()]
        end = extend_to_encoding(text, index[match.end() - 1] + 1)
        finding = Finding(start, end, entity_type)
        (callers if _comparable(value) in callers_values.comparable_keys() else findings).append(finding)
    if with_ner and policy.ner_types and view.strip():
        if policy.detect is None:
            raise DetectorUnavailable("the response policy names detector types but has no detector")
        for start, end, entity_type in ner_findings(view, policy.ner_types, policy.detect, callers_values):
            findings.append(Finding(index[start], extend_to_encoding(text, index[end - 1] + 1), entity_type))
    if not findings:
        return findings
    # a phone number inside the caller's own card number is not a new value
    findings = [f for f in findings if not any(c.start <= f.start and f.end <= c.end for c in callers)]
    return _merge(findings)


def _comparable(value: str) -> str:
    """A value as compared with the caller's: without punctuation or spaces, case-folded."""
    return _NOT_WORD.sub("", value).casefold()


def _matches(entity_type: str, pattern: re.Pattern[str], view: str, sites: MatchSites) -> Iterator[re.Match[str]]:
    """``pattern.finditer(view)`` without trying every position of the text: the same matches,
    except digit matches too short to be valid (``_valid`` would drop them)."""
    if entity_type in _DIGIT_TYPES:
        least = _MIN_DIGITS[entity_type]
        return (
            match
            for pos, endpos, digits in sites.digit_groups()
            if digits >= least
            for match in pattern.finditer(view, pos, endpos)
        )
    if entity_type == "IBAN_CODE":
        return _from_starts(pattern, view, sites.iban_starts())
    if entity_type == "EMAIL_ADDRESS" and "@" not in view:
        return iter(())
    return pattern.finditer(view)


def _from_starts(pattern: re.Pattern[str], view: str, starts: Iterable[int]) -> Iterator[re.Match[str]]:
    """Matches of ``pattern`` at candidate start positions, left to right, never overlapping
    (what finditer finds when every match must begin at a candidate)."""
    end = 0
    for start in starts:
        if start >= end and (match := pattern.match(view, start)):
            end = match.end()
            yield match


def _merge(findings: list[Finding]) -> list[Finding]:
    merged: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if merged and finding.start < merged[-1].end:
            merged[-1].end = max(merged[-1].end, finding.end)
        else:
            merged.append(finding)
    return merged


def _refuse_blocked(findings: list[Finding], policy: ResponsePolicy) -> None:
    for finding in findings:
        if finding.entity_type in policy.block_types:
            raise AnswerBlocked(f"the answer contained a value of type {finding.entity_type}, which the policy blocks")


def redact_values(text: str, policy: ResponsePolicy, allowed: CallerValues | Iterable[str] = ()) -> str:
    """``text`` with every value the caller did not send replaced by ``<TYPE_REDACTED>``."""
    findings = find_values(text, policy, allowed)
    if not findings:
        return text
    _refuse_blocked(findings, policy)
    pieces, cursor = [], 0
    for finding in findings:
        pieces += [text[cursor : finding.start], f"<{finding.entity_type}_REDACTED>"]
        cursor = finding.end
    pieces.append(text[cursor:])
    return "".join(pieces)


@dataclass
class StreamGuard:
    """One streamed field: emits text once it cannot be part of a value any more."""

    policy: ResponsePolicy
    allowed: CallerValues = field(default_factory=CallerValues)
    _pending: str = field(default="", init=False)

    @property
    def holding(self) -> bool:
        return bool(self._pending)

    @property
    def held_chars(self) -> int:
        return len(self._pending)

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        hold = _hold_start(text)
        if self.policy.ner_types:
            hold = min(hold, sentence_cut(text))
        for finding in find_values(text, self.policy, self.allowed, with_ner=False):
            if finding.end > hold and finding.start < hold:
                hold = finding.start  # a value that may still grow: keep all of it
            elif finding.end <= hold:
                _refuse_blocked([finding], self.policy)
        emitted = redact_values(text[:hold], self.policy, self.allowed)
        self._pending = text[hold:]
        return emitted

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return redact_values(text, self.policy, self.allowed)


def _strip_quotes(word: str) -> str:
    """A group as written in markdown or prose: **(415), `123, "NL91, :020 -> the group itself."""
    return unicodedata.normalize("NFKC", word).lstrip("*_`\"'[(:;,<{").rstrip("*_`\"'],;>})")


def _continues_a_value(char: str) -> bool:
    if char in DASHES or unicodedata.category(char) == "Cf":
        return True
    folded = unicodedata.normalize("NFKC", char) if not char.isascii() else char
    return bool(folded) and bool(_CONTINUES_A_VALUE.match(folded[0]))


def _hold_start(text: str) -> int:
    """Where the tail that could still become (part of) a value begins (at most MAX_HOLD back).

    The last word is held until whitespace ends it (``jane`` may still become ``jane@x.org``); a
    run of number groups before it is held too (``4111 1111 11`` may still become a card).
    """
    if text and not text[-1].isspace() and not _continues_a_value(text[-1]):
        return len(text)  # "...>", "...!", "...,": the word is finished, nothing can grow from it
    tail = text[-MAX_EMAIL_HOLD:].rsplit(None, 1)
    last_word = tail[-1] if tail else ""
    floor = max(0, len(text) - (MAX_EMAIL_HOLD if "@" in last_word else MAX_HOLD))
    start = len(text)
    while start > floor and not text[start - 1].isspace():
        start -= 1
    # then number groups separated by single spaces, while the held part starts with one
    while start > floor:
        gap = start - 1
        if not text[gap].isspace() or gap == 0 or text[gap - 1].isspace():
            break
        held_head = _strip_quotes(text[start:].split(None, 1)[0] if text[start:].strip() else "")
        if held_head and not (_NUMBER_GROUP.fullmatch(held_head) or _GROUP_OPENING.fullmatch(held_head)):
            break
        previous = gap
        while previous > floor and not text[previous - 1].isspace():
            previous -= 1
        if not _NUMBER_GROUP.fullmatch(_strip_quotes(text[previous:gap])):
            break
        start = previous
    return max(start, floor)
