"""Anthropic Messages: which fields are structure, and restoring answers (JSON and events)."""

from __future__ import annotations

from typing import Any

from redaction.api_format import ApiFormat, Event
from redaction.delta_streams import DeltaStreams, PathKey
from redaction.placeholders import PlaceholderMap
from redaction.response_guard import redact_values
from redaction.restore import StreamRestorer, restore_text
from redaction.walker import WalkRules, map_strings

MESSAGES_RULES = WalkRules(
    structural_keys=frozenset(
        {
            "model",
            "role",
            "type",
            "id",
            "tool_use_id",
            "name",  # tool names: identifiers the application dispatches on
            "stop_reason",
            "stop_sequence",
            "media_type",
            "signature",  # thinking signatures must come back byte for byte
            "data",  # redacted_thinking payloads: encrypted by the provider
            "encrypted_content",  # web search results, encrypted by the provider
            "cache_control",
            "max_tokens",
            "temperature",
            "top_k",
            "top_p",
            "budget_tokens",
            "required",
            "disable_parallel_tool_use",
            "service_tier",
        }
    ),
    free_form_keys=frozenset({"input", "metadata"}),  # tool_use input is the application's JSON
    uninspectable_part_types=frozenset({"image", "document"}),
)

# content_block_delta types that carry whole objects, not appended text: checked event by event
_WHOLE_DELTA_TYPES = frozenset({"citations_delta", "signature_delta"})
# (thinking is left with its placeholders: see _restore)
_GUARD_ONLY_KEYS = frozenset({"thinking"})


def _restore(text: str, key: str | None, mapping: PlaceholderMap) -> str:
    # Thinking text is signed by the provider and must be sent back unchanged in later turns: it
    # keeps its placeholders, so the client never holds (and resends) it with real values.
    if key in _GUARD_ONLY_KEYS:
        # values the model made up are still redacted (privacy first: a redaction there breaks
        # that turn's signature, which an operator can avoid with response_redact_types: [])
        policy = mapping.response_policy
        return redact_values(text, policy, mapping.caller_values()) if policy is not None and policy.active else text
    return restore_text(text, mapping, json_escape=key == "partial_json")


def _restore_strings(data: Any, mapping: PlaceholderMap) -> Any:
    return map_strings(data, MESSAGES_RULES, lambda text, key: _restore(text, key, mapping))


class MessagesEventRestorer:
    """Restores Anthropic's event grammar (message_start ... message_stop) as it passes.

    Every string field of a ``content_block_delta`` (text, partial_json, thinking, and fields or
    delta types added later) is one split-safe text per content block and delta type; what a
    block still holds is released as one more ``content_block_delta`` just before its
    ``content_block_stop``.
    """

    def __init__(self, mapping: PlaceholderMap, request: dict[str, Any]) -> None:
        self._mapping = mapping
        self._fields = DeltaStreams(MESSAGES_RULES, self._field_restorer)

    def _field_restorer(self, stream: Any, path: PathKey) -> StreamRestorer:
        key = path[-1]
        return StreamRestorer(self._mapping, json_escape=key == "partial_json", restore=key not in _GUARD_ONLY_KEYS)

    def restore(self, event: str | None, data: Any) -> list[Event]:
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "content_block_delta" and isinstance(data.get("delta"), dict):
            delta = data["delta"]
            if delta.get("type") not in _WHOLE_DELTA_TYPES:
                self._fields.restore((data.get("index"), delta.get("type")), delta)
                return [(event, data)]
        if kind == "content_block_stop":
            return [*self._release(data.get("index")), (event, data)]
        if kind == "message_stop":
            return [*self.finish(), (event, data)]
        return [(event, _restore_strings(data, self._mapping))]

    def _release(self, index: Any) -> list[Event]:
        events = []
        for stream in self._fields.streams():
            block, delta_type = stream  # type: ignore[misc]
            delta: dict[str, Any] = {"type": delta_type}
            if block == index and self._fields.release(stream, delta):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": block, "delta": delta}))
        return events

    def finish(self) -> list[Event]:
        blocks = dict.fromkeys(block for block, _ in self._fields.streams())  # type: ignore[misc]
        return [event for block in blocks for event in self._release(block)]


MESSAGES = ApiFormat(
    name="anthropic.messages",
    rules=MESSAGES_RULES,
    restore_body=lambda body, mapping, request: _restore_strings(body, mapping),
    event_restorer=MessagesEventRestorer,
    done_marker=False,
)
