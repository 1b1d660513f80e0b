"""OpenAI Responses API: structure of `input`/`instructions`/tools, and restoring its events."""

from __future__ import annotations

from typing import Any

from redaction.api_format import ApiFormat, Event
from redaction.delta_streams import DeltaStreams, PathKey
from redaction.placeholders import PlaceholderMap
from redaction.response_guard import drop_token_details
from redaction.restore import StreamRestorer, restore_text
from redaction.walker import WalkRules, map_strings

RESPONSES_RULES = WalkRules(
    structural_keys=frozenset(
        {
            "model",
            "role",
            "type",
            "id",
            "call_id",
            "object",
            "status",
            "previous_response_id",
            "encrypted_content",
            "include",
            "truncation",
            "service_tier",
            "reasoning",
            "store",
            "background",
            "required",
            "detail",
            "sequence_number",
            # numeric parameters
            "max_output_tokens",
            "max_tool_calls",
            "temperature",
            "top_p",
            "top_logprobs",
            "created_at",
            "output_index",
            "content_index",
            "summary_index",
            "item_id",
        }
    ),
    # function names (tool definitions, function_call items) and the JSON schema's name
    structural_keys_under={
        "tools": frozenset({"name"}),
        "input": frozenset({"name"}),
        "output": frozenset({"name"}),
        "item": frozenset({"name"}),
        "format": frozenset({"name"}),
        "tool_choice": frozenset({"name"}),
    },
    embedded_json_keys=frozenset({"arguments"}),
    free_form_keys=frozenset({"metadata"}),
    uninspectable_part_types=frozenset({"input_image", "input_file", "input_audio"}),
)

_JSON_TEXT_KEYS = frozenset({"arguments"})
# Every `<family>.delta` event (output text, refusals, function and MCP arguments, custom tool
# input, reasoning, code, transcripts...) gets split-safe restorers for its string fields; the
# matching `<family>.done` releases what they hold. Families ending in "arguments" carry JSON.
_IDENTIFIERS = ("item_id", "output_index", "content_index", "summary_index")


def _restore_strings(data: Any, mapping: PlaceholderMap) -> Any:
    drop_token_details(data, mapping.response_policy)
    return map_strings(
        data, RESPONSES_RULES, lambda text, key: restore_text(text, mapping, json_escape=key in _JSON_TEXT_KEYS)
    )


def _restore_response(body: Any, mapping: PlaceholderMap, request: dict[str, Any]) -> Any:
    if isinstance(body, dict) and body.get("object") == "response":
        mapping.note_response_id(body.get("id"))
    return _restore_strings(body, mapping)


class ResponsesEventRestorer:
    """Restores Responses streaming events.

    Every string field of a ``*.delta`` event (``delta`` itself, and fields added later) feeds a
    split-safe restorer per stream (event family, item, part); the matching ``*.done`` event first
    gets the held-back text as one more delta, then is restored whole, as are the snapshot events
    (``response.completed``, ``output_item.done``, ...).
    """

    def __init__(self, mapping: PlaceholderMap, request: dict[str, Any]) -> None:
        self._mapping = mapping
        self._fields = DeltaStreams(RESPONSES_RULES, self._field_restorer)
        self._identifiers: dict[tuple[Any, ...], dict[str, Any]] = {}

    def _field_restorer(self, stream: tuple[Any, ...], path: PathKey) -> StreamRestorer:
        return StreamRestorer(self._mapping, json_escape=path == ("delta",) and stream[0].endswith("arguments"))

    def restore(self, event: str | None, data: Any) -> list[Event]:
        kind = data.get("type") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(data.get("response"), dict):
            self._mapping.note_response_id(data["response"].get("id"))
        if not isinstance(kind, str):
            return [(event, _restore_strings(data, self._mapping))]
        family, _, stage = kind.rpartition(".")
        key = (family, *(data.get(name) for name in _IDENTIFIERS))
        if stage == "delta":
            drop_token_details(data, self._mapping.response_policy)
            self._identifiers.setdefault(key, {k: data[k] for k in _IDENTIFIERS if k in data})
            self._fields.restore(key, data)
            return [(event, data)]
        if stage == "done" and key in self._identifiers:
            released = self._release(key, data.get("sequence_number"))
            return [*released, (event, _restore_strings(data, self._mapping))]
        return [(event, _restore_strings(data, self._mapping))]

    def _release(self, key: tuple[Any, ...], sequence_number: Any = None) -> list[Event]:
        name = f"{key[0]}.delta"
        delta: dict[str, Any] = {"type": name, **self._identifiers.get(key, {})}
        if not self._fields.release(key, delta):
            return []
        if sequence_number is not None:
            delta["sequence_number"] = sequence_number
        return [(name, delta)]

    def finish(self) -> list[Event]:
        return [event for key in self._fields.streams() for event in self._release(key)]  # type: ignore[arg-type]


RESPONSES = ApiFormat(
    name="openai.responses",
    rules=RESPONSES_RULES,
    restore_body=_restore_response,
    event_restorer=ResponsesEventRestorer,
    done_marker=False,
)
