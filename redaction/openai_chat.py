"""OpenAI Chat Completions: which fields are structure, and restoring answers (JSON and chunks)."""

from __future__ import annotations

from typing import Any

from redaction.api_format import ApiFormat, Event
from redaction.placeholders import PlaceholderMap
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
    return map_strings(body, CHAT_RULES, lambda text, key: restore_text(text, mapping, json_escape=key in json_keys))


PathKey = tuple[str | tuple[str, int], ...]


class ChatStreamRestorer:
    """Restores ``chat.completion.chunk`` events as they pass.

    One ``StreamRestorer`` per choice and per delta field (content, refusal, each tool call's
    arguments, unknown string fields alike), so a placeholder split across any number of events
    is restored once complete. What is held back for a choice is released in its
    ``finish_reason`` chunk, and anything left in ``final_chunk`` before ``[DONE]``.
    """

    def __init__(self, mapping: PlaceholderMap, *, json_content: bool = False) -> None:
        self._mapping = mapping
        self._json_keys = _json_text_keys(json_content)
        self._restorers: dict[tuple[int, PathKey], StreamRestorer] = {}
        self._template: dict[str, Any] = {}

    def restore_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        self._template = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
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
                self._restore_fields(index, delta, ())
            if choice.get("finish_reason") is not None:
                if not isinstance(delta, dict):
                    delta = choice["delta"] = {}
                self._release(index, delta)
        return chunk

    def _restore_fields(self, index: int, node: dict[str, Any] | list[Any], path: PathKey) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            if isinstance(key, str) and CHAT_RULES.is_structural(_last_name(path), key):
                continue
            step: str | tuple[str, int] = key if isinstance(key, str) else _list_step(value, key)
            if isinstance(value, str):
                restorer = self._restorers.get((index, (*path, step)))
                if restorer is None:
                    restorer = StreamRestorer(self._mapping, json_escape=step in self._json_keys)
                    self._restorers[(index, (*path, step))] = restorer
                node[key] = restorer.feed(value)  # type: ignore[index]
            elif isinstance(value, dict | list):
                self._restore_fields(index, value, (*path, step))

    def _release(self, index: int, delta: dict[str, Any]) -> bool:
        released = False
        for (choice_index, path), restorer in self._restorers.items():
            if choice_index == index and restorer.holding:
                _deposit(delta, path, restorer.flush())
                released = True
        return released

    def final_chunk(self) -> dict[str, Any] | None:
        """A chunk carrying whatever is still held back, or None when nothing is."""
        choices = []
        for index in sorted({i for i, _ in self._restorers}):
            delta: dict[str, Any] = {}
            if self._release(index, delta):
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        if not choices:
            return None
        return {**self._template, "choices": choices}


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
