"""What the proxy needs to know about one provider API, independent of HTTP.

An ``ApiFormat`` says which parts of a request are text (``rules``), how to restore a whole
answer, and how to restore a stream event by event. Each API (OpenAI Chat Completions,
Anthropic Messages, ...) is one instance, the way each feature of mitmproxy is one addon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from redaction.placeholders import PlaceholderMap
from redaction.walker import WalkRules

Event = tuple[str | None, Any]  # (SSE event name, JSON data)


class EventRestorer(Protocol):
    """Restores one streamed answer. ``restore`` may return extra events (released text)
    before the one given; ``finish`` returns what is still held when the stream ends."""

    def restore(self, event: str | None, data: Any) -> list[Event]: ...

    def finish(self) -> list[Event]: ...


@dataclass(frozen=True)
class ApiFormat:
    name: str
    rules: WalkRules
    # (answer, mapping, request) -> restored answer, in place
    restore_body: Callable[[Any, PlaceholderMap, dict[str, Any]], Any]
    # (mapping, request) -> a restorer for one stream; None: the API does not stream
    event_restorer: Callable[[PlaceholderMap, dict[str, Any]], EventRestorer] | None = None
    # OpenAI ends streams with `data: [DONE]`; Anthropic with a message_stop event
    done_marker: bool = False
