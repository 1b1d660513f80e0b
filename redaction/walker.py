"""Find every string of a JSON body that can carry user text, and write sanitised text back.

The walk is generic (unknown fields are inspected too); a ``WalkRules`` object says which keys
are structural, which strings hold JSON of their own, and which content parts cannot be read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redaction.errors import UninspectableContent

# Integers this long inside tool arguments can be phone, card or account numbers.
MIN_INSPECTED_DIGITS = 7


@dataclass(frozen=True)
class WalkRules:
    """What of a provider's JSON is structure and what is text."""

    structural_keys: frozenset[str] = frozenset()
    structural_keys_under: dict[str, frozenset[str]] = field(default_factory=dict)
    embedded_json_keys: frozenset[str] = frozenset()
    uninspectable_part_types: frozenset[str] = frozenset()

    def is_structural(self, parent_key: str | None, key: str) -> bool:
        return key in self.structural_keys or key in self.structural_keys_under.get(parent_key or "", ())


@dataclass
class _Slot:
    container: dict[str, Any] | list[Any]
    key: str | int
    was_number: bool = False


@dataclass
class _Embedded:
    """A JSON document that lives inside a string (tool-call arguments)."""

    container: dict[str, Any] | list[Any]
    key: str | int
    document: Any


@dataclass
class TextFields:
    """The inspectable strings of one body, in walk order, and how to write them back."""

    texts: list[str] = field(default_factory=list)
    _slots: list[_Slot] = field(default_factory=list)
    _embedded: list[_Embedded] = field(default_factory=list)

    def write_back(self, new_texts: list[str]) -> None:
        """Store sanitised texts where the originals were, then re-serialise embedded JSON."""
        for slot, old, new in zip(self._slots, self.texts, new_texts, strict=True):
            if slot.was_number and new == old:
                continue  # nothing found: the number stays a number
            slot.container[slot.key] = new  # type: ignore[index]
        for embedded in reversed(self._embedded):
            embedded.container[embedded.key] = json.dumps(embedded.document, ensure_ascii=False)  # type: ignore[index]


def collect_text_fields(body: Any, rules: WalkRules, *, block_uninspectable: bool = True) -> TextFields:
    """Walk ``body`` (mutable, parsed JSON) and collect every string to inspect."""
    fields = TextFields()

    def visit(container: dict[str, Any] | list[Any], key: str | int, parent_key: str | None, in_embedded: bool) -> None:
        value = container[key]  # type: ignore[index]
        if isinstance(value, str):
            if isinstance(key, str) and key in rules.embedded_json_keys:
                document = _parse_json_container(value)
                if document is not None:
                    fields._embedded.append(_Embedded(container, key, document))
                    holder = [document]
                    visit(holder, 0, key, True)
                    fields._embedded[-1].document = holder[0]
                    return
            fields.texts.append(value)
            fields._slots.append(_Slot(container, key))
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int) and in_embedded and len(str(abs(value))) >= MIN_INSPECTED_DIGITS:
            fields.texts.append(str(value))
            fields._slots.append(_Slot(container, key, was_number=True))
        elif isinstance(value, dict):
            part_type = value.get("type")
            if isinstance(part_type, str) and part_type in rules.uninspectable_part_types:
                if block_uninspectable:
                    raise UninspectableContent(f"content of type {part_type!r} cannot be inspected for personal data")
                return
            name = key if isinstance(key, str) else parent_key
            for child_key in list(value):
                # inside tool arguments every value is data, whatever its key is called
                if in_embedded or not rules.is_structural(name, child_key):
                    visit(value, child_key, name, in_embedded)
        elif isinstance(value, list):
            name = key if isinstance(key, str) else parent_key
            for index in range(len(value)):
                visit(value, index, name, in_embedded)

    root = [body]
    visit(root, 0, None, False)
    return fields


def _parse_json_container(text: str) -> dict[str, Any] | list[Any] | None:
    """The parsed document if ``text`` is a JSON object or array, else None (treated as text)."""
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict | list) else None


def map_strings(body: Any, rules: WalkRules, transform: Callable[[str, str | None], str]) -> Any:
    """Apply ``transform(text, key)`` to every non-structural string of ``body`` in place."""

    def visit(value: Any, parent_key: str | None) -> Any:
        if isinstance(value, str):
            return transform(value, parent_key)
        if isinstance(value, dict):
            for child_key, child in value.items():
                if not rules.is_structural(parent_key, child_key):
                    value[child_key] = visit(child, child_key)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                value[index] = visit(child, parent_key)
        return value

    return visit(body, None)
