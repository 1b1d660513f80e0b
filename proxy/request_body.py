"""Reading and checking a client's JSON body before anything else touches it."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from proxy.errors import ContentNotInspectable, InvalidJSON, InvalidRequest, PayloadTooLarge
from redaction import jsonio

CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MESSAGES_ROLES = frozenset({"user", "assistant"})
RESPONSES_ROLES = frozenset({"system", "developer", "user", "assistant"})
MAX_MODEL_CHARS = 256  # the log's model column


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body exceeds the proxy's limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the proxy's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = jsonio.loads(raw)
    except RecursionError:
        raise InvalidJSON("request body is nested too deeply") from None
    except UnicodeDecodeError:
        raise InvalidJSON("request body is not valid UTF-8") from None
    except jsonio.NotFiniteNumber:
        raise InvalidJSON("request body is not valid JSON (NaN, Infinity or a number out of range)") from None
    except json.JSONDecodeError as exc:
        # position only: the parser's message could quote the body
        raise InvalidJSON(f"request body is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except ValueError:  # an integer of more than 4300 digits (int()'s limit), and any other refusal
        raise InvalidJSON("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    return body


def check_chat_request(body: dict[str, Any]) -> None:
    """The shape a Chat Completions request must have; field names only in messages."""
    _check_model_and_stream(body)
    _check_messages(body.get("messages"), CHAT_ROLES)


def _check_model_and_stream(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_CHARS or not model.isprintable():
        raise InvalidRequest(f"'model' must be a non-empty printable string of at most {MAX_MODEL_CHARS} characters")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):  # null: the SDKs default
        raise InvalidRequest("'stream' must be a boolean (or null)")


def _check_messages(messages: Any, roles: frozenset[str]) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array")
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in roles:
            raise InvalidRequest(f"'messages[{position}].role' must be one of {', '.join(sorted(roles))}")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequest(f"'messages[{position}].content' must be a string, an array of parts, or null")


def check_messages_request(body: dict[str, Any]) -> None:
    """The shape an Anthropic Messages request must have."""
    _check_model_and_stream(body)
    _check_messages(body.get("messages"), MESSAGES_ROLES)
    if "system" in body and not isinstance(body["system"], str | list):
        raise InvalidRequest("'system' must be a string or an array of text blocks")


def _token_arrays(value: Any) -> bool:
    """Token ids can spell anything and cannot be inspected without the model's tokenizer."""
    return isinstance(value, list) and any(isinstance(v, int) or _token_arrays(v) for v in value)


def _check_text_input(body: dict[str, Any], field: str) -> None:
    """A string or an array of strings; token ids are refused (they cannot be inspected)."""
    _check_model_and_stream(body)
    value = body.get(field)
    if _token_arrays(value):
        raise ContentNotInspectable(f"'{field}' given as token ids cannot be inspected for personal data; send text")
    if not isinstance(value, str | list) or (isinstance(value, list) and not all(isinstance(t, str) for t in value)):
        raise InvalidRequest(f"'{field}' must be a string or an array of strings")


def check_embeddings_request(body: dict[str, Any]) -> None:
    _check_text_input(body, "input")


def check_completions_request(body: dict[str, Any]) -> None:
    _check_text_input(body, "prompt")


def check_any_object(body: dict[str, Any]) -> None:
    """Operator-allowed paths: any JSON object; the generic walk inspects every string."""
    if body.get("stream") is not None and not isinstance(body["stream"], bool):  # null: the SDKs default
        raise InvalidRequest("'stream' must be a boolean (or null)")


def check_responses_request(body: dict[str, Any]) -> None:
    """The shape an OpenAI Responses request must have."""
    _check_model_and_stream(body)
    if not isinstance(body.get("input"), str | list) and not body.get("previous_response_id"):
        raise InvalidRequest("'input' must be a string or an array of input items")
    if "instructions" in body and body["instructions"] is not None and not isinstance(body["instructions"], str):
        raise InvalidRequest("'instructions' must be a string")
    items = body.get("input")
    if isinstance(items, list):
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidRequest(f"'input[{position}]' must be an object")
            role = item.get("role")
            if role is not None and role not in RESPONSES_ROLES:
                raise InvalidRequest(f"'input[{position}].role' must be one of {', '.join(sorted(RESPONSES_ROLES))}")
