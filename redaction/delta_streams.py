"""Every string field of a stream's deltas, each restored split-safe, known fields and unknown alike.

A provider's stream carries text in delta objects: ``content`` and tool-call ``arguments`` in
chat chunks, ``text`` or ``partial_json`` in Anthropic blocks, ``delta`` in Responses events, and
whatever fields a provider adds tomorrow. Each (stream, field path) gets its own
``StreamRestorer``, so a placeholder or an injected value split across any number of events is
handled as one text; what a stream still holds is deposited back at the same path when it ends.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from redaction.restore import StreamRestorer
from redaction.walker import WalkRules

PathKey = tuple[str | tuple[str, int], ...]
MakeRestorer = Callable[[Any, PathKey], StreamRestorer]  # (stream, field path) -> its restorer


class DeltaStreams:
    """The split-safe restorers of one answer, keyed by stream (a choice, a block...) and field path."""

    def __init__(self, rules: WalkRules, make_restorer: MakeRestorer) -> None:
        self._rules = rules
        self._make_restorer = make_restorer
        self._restorers: dict[tuple[Hashable, PathKey], StreamRestorer] = {}

    def restore(self, stream: Hashable, node: dict[str, Any] | list[Any], path: PathKey = ()) -> None:
        """Restore every non-structural string under ``node`` in place, as the next piece of its field."""
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if isinstance(key, str) and self._rules.is_structural(_last_name(path), key):
                continue
            step: str | tuple[str, int] = key if isinstance(key, str) else _list_step(value, key)
            if isinstance(value, str):
                restorer = self._restorers.get((stream, (*path, step)))
                if restorer is None:
                    restorer = self._restorers[(stream, (*path, step))] = self._make_restorer(stream, (*path, step))
                node[key] = restorer.feed(value)  # type: ignore[index]
            elif isinstance(value, dict | list):
                self.restore(stream, value, (*path, step))

    def release(self, stream: Hashable, delta: dict[str, Any]) -> bool:
        """Deposit into ``delta`` what ``stream``'s fields still hold; whether there was any."""
        released = False
        for (owner, path), restorer in self._restorers.items():
            if owner == stream and restorer.holding:
                _deposit(delta, path, restorer.flush())
                released = True
        return released

    def streams(self) -> list[Hashable]:
        """Every stream seen, in first-seen order."""
        return list(dict.fromkeys(stream for stream, _ in self._restorers))


def _last_name(path: PathKey) -> str | None:
    for step in reversed(path):
        if isinstance(step, str):
            return step
    return None


def _list_step(value: Any, position: int) -> tuple[str, int]:
    """Tool-call deltas name their slot with ``index``; other list items go by position."""
    if isinstance(value, dict) and isinstance(value.get("index"), int):
        return ("index", value["index"])
    return ("position", position)


def _deposit(delta: dict[str, Any], path: PathKey, text: str) -> None:
    """Append ``text`` at ``path`` inside ``delta``, creating the nesting it needs."""
    node: Any = delta
    for step, next_step in zip(path, (*path[1:], None), strict=True):
        if isinstance(step, tuple) and next_step is None:
            node.append(text)  # a string directly inside a list
        elif isinstance(step, tuple):
            kind, number = step
            match = next((item for item in node if kind == "index" and item.get("index") == number), None)
            if match is None:
                match = {"index": number} if kind == "index" else {}
                node.append(match)
            node = match
        elif next_step is None:
            node[step] = (node.get(step) or "") + text
        else:
            child = node.get(step)
            if not isinstance(child, list | dict):  # absent, or null in the upstream's chunk
                child = node[step] = [] if isinstance(next_step, tuple) else {}
            node = child
