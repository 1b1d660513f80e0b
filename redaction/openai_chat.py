"""OpenAI Chat Completions: which fields are structure, and restoring answers (JSON and chunks)."""

from __future__ import annotations

from typing import Any

from redaction.api_format import ApiFormat, Event
from redaction.delta_streams import DeltaStreams
from redaction.placeholders import PlaceholderMap
from redaction.response_guard import drop_token_details
from redaction.restore import StreamRestorer, restore_text
from redaction.walker import WalkRules, map_strings

CHAT_RULES = WalkRules(
    structural_keys=frozenset(
        {
            "model",
            "role",
            "type",
            "id",
            "tool_call_id",
            "object",
            "finish_reason",
            "reasoning_effort",
            "service_tier",
            "detail",
            "format",
            "encoding_format",
            "voice",
            "modalities",
            "verbosity",
            "required",
            "system_fingerprint",
            # numeric parameters: never personal data, and long seeds must stay numbers
            "seed",
            "max_tokens",
            "max_completion_tokens",
            "n",
            "temperature",
            "top_p",
            "top_logprobs",
            "frequency_penalty",
            "presence_penalty",
            "logit_bias",
            "created",
        }
    ),
    # a function's or schema's name is an identifier the application dispatches on
    structural_keys_under={"function": frozenset({"name"}), "json_schema": frozenset({"name"})},
    embedded_json_keys=frozenset({"arguments"}),
    free_form_keys=frozenset({"metadata"}),
    uninspectable_part_types=frozenset({"image_url", "input_audio", "file", "input_image", "input_file"}),
)

# String fields whose text is JSON: restored values must be JSON-escaped there.
_JSON_TEXT_KEYS = frozenset({"arguments"})


def answers_in_json(request: dict[str, Any]) -> bool:
    """Whether the answer's content is JSON text (structured outputs): restore JSON-escaped then."""
    response_format = request.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")


def _json_text_keys(json_content: bool) -> frozenset[str]:
    return _JSON_TEXT_KEYS | {"content"} if json_content else _JSON_TEXT_KEYS


def restore_chat_response(body: Any, mapping: PlaceholderMap, *, json_content: bool = False) -> Any:
    """Restore placeholders in every text field of a non-streaming answer, in place."""
    json_keys = _json_text_keys(json_content)
    drop_token_details(body, mapping.response_policy)
    return map_strings(body, CHAT_RULES, lambda text, key: restore_text(text, mapping, json_escape=key in json_keys))


class ChatStreamRestorer:
    """Restores ``chat.completion.chunk`` events as they pass.

    One ``StreamRestorer`` per choice and per delta field (content, refusal, each tool call's
    arguments, unknown string fields alike), so a placeholder split across any number of events
    is restored once complete. What is held back for a choice is released in its
    ``finish_reason`` chunk, and anything left in ``final_chunk`` before ``[DONE]``.
    """

    def __init__(self, mapping: PlaceholderMap, *, json_content: bool = False) -> None:
        json_keys = _json_text_keys(json_content)
        self._policy = mapping.response_policy
        self._fields = DeltaStreams(
            CHAT_RULES, lambda stream, path: StreamRestorer(mapping, json_escape=path[-1] in json_keys)
        )
        self._template: dict[str, Any] = {}

    def restore_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        self._template = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        drop_token_details(chunk, self._policy)
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return chunk
        for position, choice in enumerate(choices):
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", position)
            index = index if isinstance(index, int) else position
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._fields.restore(index, delta)
            if choice.get("finish_reason") is not None:
                if not isinstance(delta, dict):
                    delta = choice["delta"] = {}
                self._fields.release(index, delta)
        return chunk

    def final_chunk(self) -> dict[str, Any] | None:
        """A chunk carrying whatever is still held back, or None when nothing is."""
        choices = []
        for index in sorted(self._fields.streams()):  # type: ignore[type-var]
            delta: dict[str, Any] = {}
            if self._fields.release(index, delta):
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        if not choices:
            return None
        return {**self._template, "choices": choices}


class ChatEventRestorer:
    """``EventRestorer`` adapter over ``ChatStreamRestorer`` for chat.completion.chunk events."""

    def __init__(self, mapping: PlaceholderMap, request: dict[str, Any]) -> None:
        self._chunks = ChatStreamRestorer(mapping, json_content=answers_in_json(request))
        self._mapping = mapping

    def restore(self, event: str | None, data: Any) -> list[Event]:
        if isinstance(data, dict) and "choices" in data:
            return [(event, self._chunks.restore_chunk(data))]
        return [(event, restore_chat_response(data, self._mapping))]

    def finish(self) -> list[Event]:
        final = self._chunks.final_chunk()
        return [] if final is None else [(None, final)]


CHAT = ApiFormat(
    name="openai.chat",
    rules=CHAT_RULES,
    restore_body=lambda body, mapping, request: restore_chat_response(
        body, mapping, json_content=answers_in_json(request)
    ),
    event_restorer=ChatEventRestorer,
    done_marker=True,
)
