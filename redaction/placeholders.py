"""Placeholders such as ``<PERSON_1>``: one per distinct value, numbered per entity type."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")


def normalise_value(value: str) -> str:
    """The key under which two spellings of one value share a placeholder."""
    return " ".join(value.split()).casefold()


class PlaceholderMap:
    """The two-way mapping between original values and their placeholders for one exchange.

    Placeholders already present in the client's own text are *reserved*: they are never handed
    out, so a literal ``<PERSON_1>`` typed by the user can never be "restored" into a real value.
    """

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._reserved = set(reserved)
        self._by_key: dict[str, str] = {}
        self._originals: dict[str, str] = {}
        self._types: dict[str, str] = {}
        self._next: Counter[str] = Counter()
        self._prefixes: frozenset[str] | None = None

    def placeholder_for(self, value: str, entity_type: str) -> str:
        """The placeholder of ``value``, created on first sight."""
        key = normalise_value(value)
        existing = self._by_key.get(key)
        if existing is not None:
            return existing
        while True:
            self._next[entity_type] += 1
            placeholder = f"<{entity_type}_{self._next[entity_type]}>"
            if placeholder not in self._reserved:
                break
        self._by_key[key] = placeholder
        self._originals[placeholder] = value
        self._types[placeholder] = entity_type
        self._prefixes = None
        return placeholder

    def original(self, placeholder: str) -> str | None:
        return self._originals.get(placeholder)

    def known_values(self) -> list[str]:
        return list(self._originals.values())

    def is_placeholder_prefix(self, text: str) -> bool:
        """True when ``text`` is a proper prefix of a placeholder of this map (stream hold-back)."""
        if self._prefixes is None:
            self._prefixes = frozenset(p[:i] for p in self._originals for i in range(1, len(p)))
        return text in self._prefixes

    def entity_counts(self) -> dict[str, int]:
        """Distinct values per entity type: safe to keep in clear (no values)."""
        return dict(Counter(self._types.values()))

    def __len__(self) -> int:
        return len(self._originals)

    def __bool__(self) -> bool:
        return bool(self._originals)

    def to_dict(self) -> dict[str, dict[str, str]]:
        """Serialisable form, for the encrypted log only."""
        return {p: {"value": v, "type": self._types[p]} for p, v in self._originals.items()}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, str]]) -> PlaceholderMap:
        mapping = cls()
        for placeholder, entry in data.items():
            mapping._by_key[normalise_value(entry["value"])] = placeholder
            mapping._originals[placeholder] = entry["value"]
            mapping._types[placeholder] = entry["type"]
            match = PLACEHOLDER_RE.fullmatch(placeholder)
            if match is not None:
                kind, number = match.group(1), int(match.group(2))
                mapping._next[kind] = max(mapping._next[kind], number)
        return mapping


def placeholders_in(texts: Iterable[str]) -> set[str]:
    """Every placeholder-shaped token in ``texts`` (to reserve them)."""
    return {match.group(0) for text in texts for match in PLACEHOLDER_RE.finditer(text)}
