"""Put original values back in place of placeholders, in whole texts and in streams."""

from __future__ import annotations

import json

from redaction.placeholders import PLACEHOLDER_RE, PlaceholderMap


def _json_escaped(value: str) -> str:
    """``value`` as it must appear inside a JSON string literal (tool-call arguments)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def restore_text(text: str, mapping: PlaceholderMap, *, json_escape: bool = False) -> str:
    """Replace every placeholder of ``mapping`` in ``text``; unknown placeholder-like text stays."""
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

    __slots__ = ("_held", "_json_escape", "_mapping")

    def __init__(self, mapping: PlaceholderMap, *, json_escape: bool = False) -> None:
        self._mapping = mapping
        self._json_escape = json_escape
        self._held = ""

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def feed(self, piece: str) -> str:
        text = self._held + piece if self._held else piece
        cut = len(text)
        start = text.rfind("<")
        if start != -1 and self._mapping.is_placeholder_prefix(text[start:]):
            cut = start
        self._held = text[cut:]
        return restore_text(text[:cut], self._mapping, json_escape=self._json_escape)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held
