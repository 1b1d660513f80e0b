"""Put original values back in place of placeholders, in whole texts and in streams."""

from __future__ import annotations

import json

from redaction.placeholders import PLACEHOLDER_RE, PlaceholderMap
from redaction.response_guard import StreamGuard, redact_values


def _json_escaped(value: str) -> str:
    """``value`` as it must appear inside a JSON string literal (tool-call arguments)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def restore_text(text: str, mapping: PlaceholderMap, *, json_escape: bool = False, guard: bool = True) -> str:
    """Replace every placeholder of ``mapping`` in ``text``; unknown placeholder-like text stays.

    With a response policy on the mapping, values the caller never sent are redacted first
    (``guard=False`` when a ``StreamGuard`` already did that).
    """
    policy = mapping.response_policy
    if guard and policy is not None and policy.active:
        text = redact_values(text, policy, mapping.caller_values())
    if not mapping or "<" not in text:
        return text

    def original(match) -> str:
        value = mapping.original(match.group(0))
        if value is None:
            return match.group(0)
        return _json_escaped(value) if json_escape else value

    return PLACEHOLDER_RE.sub(original, text)


class StreamRestorer:
    """Restores one text field that arrives in pieces (one per stream event).

    ``feed`` returns what can be emitted now; it holds back only a tail that is still the
    beginning of one of this exchange's placeholders (at most the longest placeholder), and
    emits it as soon as the next piece shows it is not. ``flush`` returns whatever is held
    when the field ends.
    """

    __slots__ = ("_guard", "_held", "_json_escape", "_mapping", "_restore")

    def __init__(self, mapping: PlaceholderMap, *, json_escape: bool = False, restore: bool = True) -> None:
        """``restore=False``: placeholders stay as they are (signed thinking); only the guard runs."""
        self._mapping = mapping
        self._json_escape = json_escape
        self._restore = restore
        self._held = ""
        self._guard: StreamGuard | None = None

    @property
    def held_chars(self) -> int:
        """Characters of the upstream's text received but not emitted yet (the stream's delay)."""
        return len(self._held) + (self._guard.held_chars if self._guard is not None else 0)

    @property
    def holding(self) -> bool:
        return bool(self._held) or (self._guard is not None and self._guard.holding)

    def feed(self, piece: str) -> str:
        if self._guard is None and self._mapping.response_policy is not None and self._mapping.response_policy.active:
            self._guard = StreamGuard(self._mapping.response_policy, self._mapping.caller_values())
        if self._guard is not None:
            piece = self._guard.feed(piece)
        if not self._restore:
            return piece
        text = self._held + piece if self._held else piece
        cut = len(text)
        start = text.rfind("<")
        if start != -1 and self._mapping.is_placeholder_prefix(text[start:]):
            cut = start
        self._held = text[cut:]
        return restore_text(text[:cut], self._mapping, json_escape=self._json_escape, guard=False)

    def flush(self) -> str:
        tail = self._guard.flush() if self._guard is not None else ""
        text, self._held = self._held + tail, ""
        return restore_text(text, self._mapping, json_escape=self._json_escape, guard=False)
