"""Placeholders such as ``<PERSON_1>``: one per distinct value, numbered per entity type."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, KeysView, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redaction.response_guard import CallerValues, ResponsePolicy

PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")


WORD_RE = re.compile(r"[^\W_]+")


def first_word(value: str) -> str | None:
    """The first run of letters and digits of ``value``, case-folded (the lookup key)."""
    match = WORD_RE.search(value)
    return match.group(0).casefold() if match else None


def normalise_value(value: str) -> str:
    """The key under which two spellings of one value share a placeholder."""
    return " ".join(value.split()).casefold()


class PlaceholderStore:
    """Values and their placeholders for one scope: a single exchange, or one client across
    requests (see ``redaction.vault``). Entries remember when they were last used, for expiry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_key: dict[str, str] = {}
        self._originals: dict[str, str] = {}
        self._types: dict[str, str] = {}
        self._last_used: dict[str, float] = {}
        self._next: Counter[str] = Counter()
        self._prefixes: frozenset[str] | None = None
        self._contexts: dict[str, tuple[float, dict[str, tuple[str, str]]]] = {}  # response id -> entries
        self._by_first_word: dict[str, set[str]] = {}  # finds earlier values in new text fast

    def first_words(self) -> KeysView[str]:
        """The first words (case-folded) of every value: a text without any of them holds none."""
        return self._by_first_word.keys()

    def values_starting_with(self, token: str) -> list[str]:
        """Values whose first word (letters and digits, case-folded) is ``token``."""
        return [self._originals[p] for p in self._by_first_word.get(token, ())]

    def lookup(self, key: str) -> str | None:
        return self._by_key.get(key)

    def allocate(self, value: str, entity_type: str, key: str, avoid: set[str]) -> str:
        """A new placeholder for ``value``, never one in ``avoid`` nor one already taken."""
        while True:
            self._next[entity_type] += 1
            placeholder = f"<{entity_type}_{self._next[entity_type]}>"
            if placeholder not in avoid and placeholder not in self._originals:
                break
        # an alias (the value's usual placeholder is reserved in this exchange) does not replace it
        self._by_key.setdefault(key, placeholder)
        self._originals[placeholder] = value
        self._types[placeholder] = entity_type
        self._prefixes = None
        if (word := first_word(value)) is not None:
            self._by_first_word.setdefault(word, set()).add(placeholder)
        return placeholder

    def original(self, placeholder: str) -> str | None:
        return self._originals.get(placeholder)

    def entity_type(self, placeholder: str) -> str:
        return self._types[placeholder]

    def values(self) -> list[str]:
        return list(self._originals.values())

    def touch(self, placeholder: str) -> None:
        if placeholder in self._originals:  # an expired placeholder stays forgotten
            self._last_used[placeholder] = self._clock()

    def prefixes(self) -> frozenset[str]:
        if self._prefixes is None:
            self._prefixes = frozenset(p[:i] for p in self._originals for i in range(1, len(p)))
        return self._prefixes

    def expire(self, unused_since: float, max_entries: int) -> int:
        """Forget entries not used since ``unused_since``, then the least recently used beyond
        ``max_entries``. Returns how many were forgotten."""
        stale = [p for p in self._originals if self._last_used.get(p, 0.0) < unused_since]
        if len(self._originals) - len(stale) > max_entries:
            fresh = sorted(
                (p for p in self._originals if p not in set(stale)), key=lambda p: self._last_used.get(p, 0.0)
            )
            stale += fresh[: len(fresh) - max_entries]
        for placeholder in stale:
            value = self._originals.pop(placeholder)
            self._types.pop(placeholder, None)
            self._last_used.pop(placeholder, None)
            key = normalise_value(value)
            if self._by_key.get(key) == placeholder:
                del self._by_key[key]
            if (word := first_word(value)) is not None and word in self._by_first_word:
                self._by_first_word[word].discard(placeholder)
                if not self._by_first_word[word]:
                    del self._by_first_word[word]
        if stale:
            self._prefixes = None
        old_contexts = [rid for rid, (used, _) in self._contexts.items() if used < unused_since]
        if len(self._contexts) - len(old_contexts) > max_entries:
            by_age = sorted(
                (rid for rid in self._contexts if rid not in set(old_contexts)), key=lambda r: self._contexts[r][0]
            )
            old_contexts += by_age[: len(by_age) - max_entries]
        for response_id in old_contexts:
            del self._contexts[response_id]
        return len(stale) + len(old_contexts)

    def remember_context(self, response_id: str, entries: dict[str, tuple[str, str]]) -> None:
        self._contexts[response_id] = (self._clock(), entries)

    def context(self, response_id: str) -> dict[str, tuple[str, str]]:
        found = self._contexts.get(response_id)
        if found is None:
            return {}
        self._contexts[response_id] = (self._clock(), found[1])
        return found[1]

    def __len__(self) -> int:
        return len(self._originals) + len(self._contexts)


Entry = tuple[str, str]  # (original value, entity type)


class PlaceholderMap:
    """The placeholders of one exchange: a view over a ``PlaceholderStore``.

    Only placeholders of this exchange are ever restored: those its request uses, plus, for the
    Responses API, those of the earlier response it continues (``previous_response_id``), whose
    history the client does not resend. A model asked to spell out some other placeholder of the
    same client gets it back literally, never another request's value.

    Placeholders already present in the client's own text are *reserved*: never handed out, never
    restored, so a literal ``<PERSON_1>`` typed by the user stays what it is.
    """

    def __init__(
        self, reserved: Iterable[str] = (), store: PlaceholderStore | None = None, continues: str | None = None
    ) -> None:
        self._reserved = set(reserved)
        self._store = store if store is not None else PlaceholderStore()
        # this exchange's own copy: entries stay valid even if the store forgets them meanwhile
        self._entries: dict[str, Entry] = dict(self._store.context(continues)) if continues else {}
        for placeholder in self._reserved:
            self._entries.pop(placeholder, None)
        self._assigned: dict[str, None] = {}  # placeholders this exchange's request uses, in order
        self._restored: dict[str, None] = {}  # placeholders restored in its answer
        self._prefixes: frozenset[str] | None = None
        self._caller_values: CallerValues | None = None
        # the request's texts as forwarded: values left in them are the caller's own too
        self.forwarded_texts: Sequence[str] = ()
        self.response_id: str | None = None  # the upstream's id of this answer (Responses API)
        # what to do with personal data in the answer that the caller did not send
        self.response_policy: ResponsePolicy | None = None

    def placeholder_for(self, value: str, entity_type: str) -> str:
        """The placeholder of ``value``, created on first sight."""
        key = normalise_value(value)
        placeholder = self._store.lookup(key)
        if placeholder is None or placeholder in self._reserved:
            placeholder = self._store.allocate(value, entity_type, key, self._reserved)
        if placeholder not in self._entries:
            stored = self._store.original(placeholder)
            self._entries[placeholder] = (stored if stored is not None else value, self._store.entity_type(placeholder))
            self._prefixes = None
            self._caller_values = None
        self._assigned[placeholder] = None
        self._store.touch(placeholder)
        return placeholder

    def original(self, placeholder: str) -> str | None:
        entry = self._entries.get(placeholder)
        if entry is None:
            return None
        self._restored[placeholder] = None
        self._store.touch(placeholder)
        return entry[0]

    def known_values(self) -> list[str]:
        """Every value of the client's store: values found in earlier requests are replaced here too."""
        return self._store.values()

    def known_first_words(self) -> KeysView[str]:
        return self._store.first_words()

    def values_starting_with(self, token: str) -> list[str]:
        """Known values (the client's, across requests) whose first word is ``token``."""
        return self._store.values_starting_with(token)

    def caller_values(self) -> CallerValues:
        """Values the caller sent (this exchange's): the model may write them out as they are."""
        from redaction.response_guard import CallerValues  # the guard reads placeholders: imported late

        if self._caller_values is None:
            self._caller_values = CallerValues((value for value, _type in self._entries.values()), self.forwarded_texts)
        return self._caller_values

    def request_values(self) -> list[str]:
        """The values this exchange's request contained."""
        return [self._entries[p][0] for p in self._assigned]

    def is_placeholder_prefix(self, text: str) -> bool:
        """True when ``text`` is a proper prefix of a restorable placeholder (stream hold-back)."""
        if self._prefixes is None:
            self._prefixes = frozenset(p[:i] for p in self._entries for i in range(1, len(p)))
        return text in self._prefixes

    def note_response_id(self, response_id: Any) -> None:
        if isinstance(response_id, str) and response_id:
            self.response_id = response_id

    def remember(self) -> None:
        """Let a later request that continues this answer (``previous_response_id``) restore its
        placeholders."""
        if self.response_id is not None and self._entries:
            self._store.remember_context(self.response_id, dict(self._entries))

    def entity_counts(self) -> dict[str, int]:
        """Distinct values per entity type in this request: safe to keep in clear (no values)."""
        return dict(Counter(self._entries[p][1] for p in self._assigned))

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The placeholders this exchange used (request and answer), for the encrypted log only."""
        used = {**self._assigned, **self._restored}
        return {p: {"value": self._entries[p][0], "type": self._entries[p][1]} for p in used}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, str]]) -> PlaceholderMap:
        store = PlaceholderStore()
        for placeholder, entry in data.items():
            store._by_key[normalise_value(entry["value"])] = placeholder
            store._originals[placeholder] = entry["value"]
            store._types[placeholder] = entry["type"]
            match = PLACEHOLDER_RE.fullmatch(placeholder)
            if match is not None:
                kind, number = match.group(1), int(match.group(2))
                store._next[kind] = max(store._next[kind], number)
        mapping = cls(store=store)
        mapping._entries = {p: (e["value"], e["type"]) for p, e in data.items()}
        mapping._assigned = dict.fromkeys(data)
        return mapping


def placeholders_in(texts: Iterable[str]) -> set[str]:
    """Every placeholder-shaped token in ``texts`` (to reserve them)."""
    return {match.group(0) for text in texts for match in PLACEHOLDER_RE.finditer(text)}
