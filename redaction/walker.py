"""Find every string of a JSON body that can carry user text, and write sanitised text back.

The walk is generic (unknown fields are inspected too); a ``WalkRules`` object says which keys
are structural, which strings hold JSON of their own, and which content parts cannot be read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from redaction.errors import UninspectableContent

# JSON-schema keywords whose values are structure, not text
SCHEMA_KEYWORDS = frozenset({"type", "required", "format", "$ref", "$schema", "$id", "pattern", "additionalProperties"})
# schema keywords whose keys are property names (each value a schema)
SCHEMA_CONTAINERS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
# Keys shaped like identifiers (snake_case, camelCase, kebab-case) are field names, not data.
IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
# Integers this long inside tool arguments can be phone, card or account numbers.
MIN_INSPECTED_DIGITS = 7


@dataclass(frozen=True)
class WalkRules:
    """What of a provider's JSON is structure and what is text."""

    structural_keys: frozenset[str] = frozenset()
    structural_keys_under: dict[str, frozenset[str]] = field(default_factory=dict)
    # strings that hold JSON: restored values are JSON-escaped there
    embedded_json_keys: frozenset[str] = frozenset()
    # subtrees that are free-form data (every key and value inspected), e.g. metadata
    free_form_keys: frozenset[str] = frozenset()
    uninspectable_part_types: frozenset[str] = frozenset()
    # subtrees that are JSON schemas (tool parameters, response formats)
    schema_keys: frozenset[str] = frozenset({"parameters", "input_schema", "schema"})

    def is_structural(self, parent_key: str | None, key: str) -> bool:
        return key in self.structural_keys or key in self.structural_keys_under.get(parent_key or "", ())


@dataclass
class _Slot:
    container: dict[str, Any] | list[Any]
    key: str | int
    was_number: bool = False


@dataclass
class _KeySlot:
    """An object key inside free-form data (metadata, tool arguments): renamed if it is PII."""

    container: dict[str, Any]
    key: str


@dataclass
class _Embedded:
    """A JSON document that lives inside a string (tool-call arguments, JSON tool results)."""

    container: dict[str, Any] | list[Any]
    key: str | int
    document: Any


@dataclass
class TextFields:
    """The inspectable strings of one body, in walk order, and how to write them back."""

    texts: list[str] = field(default_factory=list)
    _slots: list[_Slot | _KeySlot] = field(default_factory=list)
    _embedded: list[_Embedded] = field(default_factory=list)

    def _add(self, text: str, slot: _Slot | _KeySlot) -> None:
        self.texts.append(text)
        self._slots.append(slot)

    def write_back(self, new_texts: list[str]) -> None:
        """Store sanitised texts where the originals were, then re-serialise embedded JSON."""
        renamed: list[tuple[_KeySlot, str]] = []
        for slot, old, new in zip(self._slots, self.texts, new_texts, strict=True):
            if new == old:
                continue  # nothing found: a number stays a number, a key stays as it is
            if isinstance(slot, _KeySlot):
                renamed.append((slot, new))
            else:
                slot.container[slot.key] = new  # type: ignore[index]
        for slot, new in renamed:  # after the values, which are addressed by the old keys
            _rename_key(slot.container, slot.key, new)
        for embedded in reversed(self._embedded):  # innermost first
            embedded.container[embedded.key] = json.dumps(embedded.document, ensure_ascii=False)  # type: ignore[index]


def _rename_key(container: dict[str, Any], old: str, new: str) -> None:
    """Rename in place, keeping the order; a clash with an existing key gets a numbered suffix."""
    unique, n = new, 1
    while unique in container and unique != old:
        n += 1
        unique = f"{new}#{n}"
    items = [(unique if k == old else k, v) for k, v in container.items()]
    container.clear()
    container.update(items)


def _number_text(value: int | float) -> str | None:
    """The digits of a number long enough to be a phone, card or account number, else None."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        digits = str(int(value)) if value.is_integer() else repr(value)
    else:
        digits = str(value)
    return digits if sum(c.isdigit() for c in digits) >= MIN_INSPECTED_DIGITS else None


def _data_shaped_key(key: str) -> bool:
    """A key of the provider's JSON that may be data: not identifier-shaped (an address, a name
    with a space), and not a short number (``logit_bias`` is keyed by token ids)."""
    if IDENTIFIER_RE.fullmatch(key):
        return False
    return not key.isdigit() or len(key) >= MIN_INSPECTED_DIGITS


class _Mode(Enum):
    STRUCTURED = "structured"  # the provider's JSON: structural keys skipped
    FREE = "free"  # application data: every key and value is data
    SCHEMA = "schema"  # a JSON schema: its keywords are structure, property names identifiers


def collect_text_fields(body: Any, rules: WalkRules, *, block_uninspectable: bool = True) -> TextFields:
    """Walk ``body`` (mutable, parsed JSON) and collect every string to inspect.

    Strings that hold a JSON object or array are parsed and walked as free-form data (every key
    and value inspected, long numbers too), then re-serialised, so values hidden in tool
    arguments or JSON tool results are seen decoded. Tool schemas are walked as schemas: a
    property called ``name`` or ``type`` still has its description, enum and default inspected.
    """
    fields = TextFields()

    def visit(container: dict[str, Any] | list[Any], key: str | int, parent_key: str | None, mode: _Mode) -> None:
        value = container[key]  # type: ignore[index]
        if isinstance(value, str):
            document = _parse_json_container(value)
            if document is not None:
                embedded = _Embedded(container, key, document)
                fields._embedded.append(embedded)
                holder = [document]
                visit(holder, 0, key if isinstance(key, str) else parent_key, _Mode.FREE)
                embedded.document = holder[0]
                return
            fields._add(value, _Slot(container, key))
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int | float):
            digits = _number_text(value)
            if digits is not None:
                fields._add(digits, _Slot(container, key, was_number=True))
        elif isinstance(value, dict):
            part_type = value.get("type")
            if mode is _Mode.STRUCTURED and isinstance(part_type, str) and part_type in rules.uninspectable_part_types:
                if block_uninspectable:
                    raise UninspectableContent(f"content of type {part_type!r} cannot be inspected for personal data")
                return
            name = key if isinstance(key, str) else parent_key
            for child_key in list(value):
                if mode is _Mode.FREE:
                    visit(value, child_key, name, _Mode.FREE)
                    if not IDENTIFIER_RE.fullmatch(child_key):
                        fields._add(child_key, _KeySlot(value, child_key))
                elif mode is _Mode.SCHEMA:
                    # under "properties" every key is a property name whose value is a schema
                    if name in SCHEMA_CONTAINERS or child_key not in SCHEMA_KEYWORDS:
                        visit(value, child_key, name, _Mode.SCHEMA)
                elif not rules.is_structural(name, child_key):
                    child_mode = (
                        _Mode.FREE
                        if child_key in rules.free_form_keys
                        else _Mode.SCHEMA
                        if child_key in rules.schema_keys
                        else _Mode.STRUCTURED
                    )
                    visit(value, child_key, name, child_mode)
                    if _data_shaped_key(child_key):  # unknown objects keyed by data: {"jane@...": ...}
                        fields._add(child_key, _KeySlot(value, child_key))
        elif isinstance(value, list):
            name = key if isinstance(key, str) else parent_key
            for index in range(len(value)):
                visit(value, index, name, mode)

    root = [body]
    visit(root, 0, None, _Mode.STRUCTURED)
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
    """Apply ``transform(text, key)`` to every non-structural string of ``body`` in place.

    Inside free-form subtrees (tool inputs, metadata) every string is data, whatever its key.
    """

    def visit(value: Any, parent_key: str | None, free: bool) -> Any:
        if isinstance(value, str):
            return transform(value, parent_key)
        if isinstance(value, dict):
            for child_key, child in value.items():
                if free or not rules.is_structural(parent_key, child_key):
                    value[child_key] = visit(child, child_key, free or child_key in rules.free_form_keys)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                value[index] = visit(child, parent_key, free)
        return value

    return visit(body, None, False)
