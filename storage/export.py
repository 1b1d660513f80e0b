"""Logged exchanges as fine-tuning examples (OpenAI chat format, one JSON object per line).

Three views of the same exchange: ``original`` (the real values, for whoever may see them),
``sanitized`` (the placeholders the upstream saw, answer included) and ``surrogates`` (each
placeholder replaced by a realistic, consistent fake value, so a model trained on it learns from
natural text without ever seeing a real person; see ``storage.surrogates``). Never imports proxy/
or redaction/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from storage.surrogates import Surrogates

if TYPE_CHECKING:
    from storage.records import ExchangeRecord

__all__ = ["Surrogates", "sanitized_answer", "training_example"]

Mode = Literal["sanitized", "original", "surrogates"]

# the proxy's placeholders, and the markers it puts where the model made up a personal value
MARKER_RE = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+|REDACTED)>")

CHAT_ENDPOINT = "/v1/chat/completions"
ANTHROPIC_ENDPOINT = "/v1/messages"
ROLES = frozenset({"system", "user", "assistant", "tool"})

# -- examples ----------------------------------------------------------------------------------


def training_example(record: ExchangeRecord, mode: Mode, surrogates: Surrogates | None = None) -> dict[str, Any] | None:
    """One fine-tuning line ``{"messages": [...], "tools": [...]}`` for ``record``, or None when the
    record cannot give one (failed, incomplete, unsupported endpoint, no consent, unparseable)."""
    if mode not in ("sanitized", "original", "surrogates"):
        raise ValueError(f"unknown export mode {mode!r}")
    if mode == "surrogates" and surrogates is None:
        raise ValueError("surrogates mode needs a Surrogates instance")
    if record.status != 200 or record.kind != "exchange" or not record.training_consent:
        return None
    request_bytes = record.original_request if mode == "original" else record.sanitized_request
    if not request_bytes or not record.response:
        return None
    request = _loads(request_bytes)
    if not isinstance(request, dict):
        return None
    try:
        if record.endpoint == CHAT_ENDPOINT:
            built = _chat_example(request, record.response)
        elif record.endpoint == ANTHROPIC_ENDPOINT:
            built = _anthropic_example(request, record.response)
        else:
            return None
    except (TypeError, ValueError, AttributeError, KeyError):  # a body of an unexpected shape
        return None
    if built is None:
        return None
    history, answer, tools, continues = built
    if mode != "original":
        answer = _to_placeholders(answer, record.mapping or {})
    messages = _merge_prefill(history, answer) if continues else [*history, answer]
    example: dict[str, Any] = {"messages": messages}
    if tools:
        example["tools"] = tools
    if mode == "surrogates":
        assert surrogates is not None
        example = _with_surrogates(example, record, surrogates)
    return example if _trainable(example["messages"]) else None


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _text(content: Any) -> str | None:
    """A message's text: the string itself, or the concatenated text of its parts/blocks."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") in ("text", "input_text")
            and isinstance(part.get("text"), str)
        )
    return None


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    return {"id": str(call_id), "type": "function", "function": {"name": str(name), "arguments": arguments}}


def _assistant(content: str | None, tool_calls: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An assistant message fine-tuning accepts, or None when it says nothing."""
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    elif not content:
        return None
    return message


def _merge_prefill(history: list[dict[str, Any]], answer: dict[str, Any]) -> list[dict[str, Any]]:
    """An Anthropic request ending with an assistant turn (a prefill) is continued by the answer:
    the model's real output is the two together."""
    if history and history[-1]["role"] == "assistant" and not history[-1].get("tool_calls"):
        prefill = history[-1]
        merged = dict(answer, content=(prefill.get("content") or "") + (answer.get("content") or "") or None)
        return [*history[:-1], merged]
    return [*history, answer]


# -- OpenAI chat completions -------------------------------------------------------------------

# history, answer, tools, and whether the answer continues a final assistant turn (prefill)
Built = tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]], bool]


def _chat_example(request: dict[str, Any], response: bytes) -> Built | None:
    raw_messages = request.get("messages")
    if not isinstance(raw_messages, list):
        return None
    history = [m for m in (_chat_message(m) for m in raw_messages if isinstance(m, dict)) if m is not None]
    answer = _chat_stream_answer(response) if _is_sse(response) else _chat_answer(_loads(response))
    if answer is None:
        return None
    tools = [
        t for t in request.get("tools") or () if isinstance(t, dict) and t.get("type") == "function" and "function" in t
    ]
    return history, answer, tools, False


def _chat_message(message: dict[str, Any]) -> dict[str, Any] | None:
    role = {"developer": "system"}.get(message.get("role"), message.get("role"))
    if role not in ROLES:
        return None  # legacy "function" results and unknown roles
    content = _text(message.get("content"))
    if role == "assistant":
        calls = [
            _tool_call(c.get("id"), c["function"].get("name"), c["function"].get("arguments"))
            for c in message.get("tool_calls") or ()
            if isinstance(c, dict) and isinstance(c.get("function"), dict)
        ]
        out = _assistant(content, calls)
    elif role == "tool":
        out = {"role": "tool", "tool_call_id": str(message.get("tool_call_id")), "content": content or ""}
    elif not content:
        return None  # an image-only user turn, say: nothing left to learn from
    else:
        out = {"role": role, "content": content}
    if out is not None and isinstance(message.get("name"), str):
        out["name"] = message["name"]
    return out


def _chat_answer(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        return None
    choices = body["choices"]
    choice = next((c for c in choices if isinstance(c, dict) and c.get("index") == 0), choices[0])
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        return None
    calls = [
        _tool_call(c.get("id"), c["function"].get("name"), c["function"].get("arguments"))
        for c in message.get("tool_calls") or ()
        if isinstance(c, dict) and isinstance(c.get("function"), dict)
    ]
    return _assistant(_text(message.get("content")), calls)


def _chat_stream_answer(response: bytes) -> dict[str, Any] | None:
    """Choice 0 rebuilt from its chunks: content concatenated, tool calls merged by ``index``."""
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finished = False
    for _event, data in _sse_events(response):
        if data.strip() == "[DONE]":
            finished = True
            continue
        chunk = json.loads(data)
        if not isinstance(chunk, dict) or "error" in chunk:
            return None
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            finished = finished or bool(choice.get("finish_reason"))
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            for piece in delta.get("tool_calls") or ():
                call = calls.setdefault(piece.get("index", 0), {"id": None, "name": None, "arguments": []})
                call["id"] = call["id"] or piece.get("id")
                function = piece.get("function") or {}
                call["name"] = call["name"] or function.get("name")
                if isinstance(function.get("arguments"), str):
                    call["arguments"].append(function["arguments"])
    if not finished:
        return None  # cut off: the answer is incomplete
    tool_calls = [
        _tool_call(c["id"] or f"call_{i}", c["name"], "".join(c["arguments"])) for i, c in sorted(calls.items())
    ]
    return _assistant("".join(content), tool_calls)


# -- Anthropic messages ------------------------------------------------------------------------


def _anthropic_example(request: dict[str, Any], response: bytes) -> Built | None:
    raw_messages = request.get("messages")
    if not isinstance(raw_messages, list):
        return None
    history: list[dict[str, Any]] = []
    system = _text(request.get("system"))
    if system:
        history.append({"role": "system", "content": system})
    for message in raw_messages:
        if isinstance(message, dict):
            history.extend(_anthropic_message(message))
    if _is_sse(response):
        blocks = _anthropic_stream_blocks(response)
    else:
        body = _loads(response)
        blocks = body.get("content") if isinstance(body, dict) and body.get("type", "message") == "message" else None
    if not isinstance(blocks, list):
        return None
    answer = _anthropic_assistant(blocks)
    if answer is None:
        return None
    tools = [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                **({"description": t["description"]} if "description" in t else {}),
                "parameters": t["input_schema"],
            },
        }
        for t in request.get("tools") or ()
        if isinstance(t, dict) and "name" in t and "input_schema" in t  # server tools have no schema
    ]
    return history, answer, tools, True


def _anthropic_message(message: dict[str, Any]) -> list[dict[str, Any]]:
    role, content = message.get("role"), message.get("content")
    if role == "assistant":
        reply = _anthropic_assistant([{"type": "text", "text": content}] if isinstance(content, str) else content)
        return [reply] if reply is not None else []
    if role != "user":
        return []
    if isinstance(content, str):
        return [{"role": "user", "content": content}] if content else []
    blocks = [b for b in content or () if isinstance(b, dict)]
    # tool results first: they answer the previous assistant turn, whatever else the user adds
    out: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": str(b.get("tool_use_id")), "content": _text(b.get("content")) or ""}
        for b in blocks
        if b.get("type") == "tool_result"
    ]
    text = _text([b for b in blocks if b.get("type") == "text"])
    if text:
        out.append({"role": "user", "content": text})
    return out


def _anthropic_assistant(blocks: Any) -> dict[str, Any] | None:
    if not isinstance(blocks, list):
        return None
    text = _text(blocks)
    calls = [
        _tool_call(b.get("id"), b.get("name"), b["arguments"] if "arguments" in b else b.get("input"))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    return _assistant(text, calls)


def _anthropic_stream_blocks(response: bytes) -> list[dict[str, Any]] | None:
    """The answer's content blocks rebuilt from the events; a tool_use block gets ``arguments``,
    the JSON text exactly as streamed."""
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, list[str]] = {}
    finished = False
    for _event, data in _sse_events(response):
        event = json.loads(data)
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "error":
            return None
        if kind == "message_stop" or (kind == "message_delta" and (event.get("delta") or {}).get("stop_reason")):
            finished = True
        elif kind == "content_block_start":
            blocks[event.get("index", 0)] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            block = blocks.setdefault(event.get("index", 0), {"type": "text", "text": ""})
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                block["text"] = (block.get("text") or "") + delta.get("text", "")
            elif delta.get("type") == "input_json_delta":
                partial.setdefault(event.get("index", 0), []).append(delta.get("partial_json", ""))
    if not finished:
        return None
    for index, pieces in partial.items():
        if "".join(pieces):
            blocks[index]["arguments"] = "".join(pieces)
    return [blocks[i] for i in sorted(blocks)]


# -- server-sent events ------------------------------------------------------------------------


def _is_sse(response: bytes) -> bool:
    return not response.lstrip().startswith(b"{")


def _sse_events(raw: bytes) -> Iterator[tuple[str | None, str]]:
    """(event name, data) of each event in a recorded stream; comments and empty events skipped."""
    text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        event: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
        if data:
            yield event, "\n".join(data)


# -- modes -------------------------------------------------------------------------------------


def _map_strings(
    data: Any, replace: Callable[[str, bool], str], skip: frozenset[str] = frozenset(), in_json: bool = False
) -> Any:
    """``data`` with ``replace(text, is_json_text)`` applied to every string value (keys, and values
    under ``skip`` keys, kept); tool-call ``arguments`` are JSON text, where a value is escaped."""
    if isinstance(data, str):
        return replace(data, in_json)
    if isinstance(data, list):
        return [_map_strings(item, replace, skip) for item in data]
    if isinstance(data, dict):
        return {
            k: v if k in skip else _map_strings(v, replace, skip, in_json=k == "arguments" and isinstance(v, str))
            for k, v in data.items()
        }
    return data


def _placeholder_pattern(mapping: dict[str, Any]) -> tuple[re.Pattern[str], dict[str, str]] | None:
    """Every value as written, JSON-escaped or ASCII-escaped, longest first ("Jane Roe" beats "Jane")."""
    needles: dict[str, str] = {}
    for placeholder, entry in mapping.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, str) or not value.strip():
            continue
        for form in (value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]):
            needles.setdefault(form, placeholder)
    if not needles:
        return None
    return re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True))), needles


def _to_placeholders(answer: dict[str, Any], mapping: dict[str, Any]) -> dict[str, Any]:
    """The restored answer back in placeholders (inside tool-call arguments too)."""
    found = _placeholder_pattern(mapping)
    if found is None:
        return answer
    pattern, needles = found
    # "role" and "type" are structure, not text: a value that happens to be "assistant" stays put
    skip = frozenset({"role", "type"})
    return _map_strings(answer, lambda text, _json: pattern.sub(lambda m: needles[m.group(0)], text), skip)


def sanitized_answer(record: ExchangeRecord) -> bytes | None:
    """The answer as the client got it, with the caller's values put back into placeholders: what
    ``audit show`` prints without ``--reveal`` (JSON or a raw event stream alike)."""
    if record.response is None:
        return None
    found = _placeholder_pattern(record.mapping or {})
    text = record.response.decode("utf-8", "replace")
    if found is None:
        return text.encode()
    pattern, needles = found
    return pattern.sub(lambda m: needles[m.group(0)], text).encode()


def _with_surrogates(example: dict[str, Any], record: ExchangeRecord, surrogates: Surrogates) -> dict[str, Any]:
    mapping = record.mapping or {}
    position = 0

    def surrogate(match: re.Match[str]) -> str:
        nonlocal position
        entity_type, suffix = match.group(1), match.group(2)
        entry = mapping.get(match.group(0))
        if suffix == "REDACTED":
            position += 1
            return surrogates.redacted(entity_type, f"{record.id}{position}")
        if isinstance(entry, dict) and isinstance(entry.get("value"), str):
            return surrogates.value(entity_type, entry["value"])
        return surrogates.redacted(entity_type, record.id + match.group(0))

    def replace(text: str, in_json: bool) -> str:
        # surrogates hold no "<", so each pass removes markers for good and the loop ends; a second
        # pass only matters for text like "<ID_<PERSON_1>>" that a first pass turns into a marker
        while MARKER_RE.search(text):
            text = MARKER_RE.sub(lambda m: json.dumps(surrogate(m))[1:-1] if in_json else surrogate(m), text)
        return text

    return _map_strings(example, replace)


def _trainable(messages: list[dict[str, Any]]) -> bool:
    """What the fine-tuning API checks: known roles, an assistant answer last, and every tool
    message answering a call of the assistant turn right before it."""
    if not messages or messages[-1]["role"] != "assistant":
        return False
    open_calls: set[str] = set()
    for message in messages:
        role = message["role"]
        if role not in ROLES:
            return False
        if role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return False
            continue
        content = message.get("content")
        if not (isinstance(content, str) or (content is None and message.get("tool_calls"))):
            return False
        open_calls = {call["id"] for call in message.get("tool_calls") or ()}
    return True
