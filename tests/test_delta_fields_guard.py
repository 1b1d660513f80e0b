"""Every string field of Anthropic and Responses stream deltas, known or unknown, is guarded as one
continuous text: an injected value split one character per event never reaches the client."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from redaction import MESSAGES, RESPONSES, PlaceholderMap, ResponsePolicy
from redaction.api_format import EventRestorer

OWN = "jane.roe@example.com"  # the caller's value, sent as a placeholder
INJECTED = "mallory.stone@example.net"  # synthetic: the model made it up


@pytest.fixture
def mapping() -> PlaceholderMap:
    mapping = PlaceholderMap()
    mapping.placeholder_for(OWN, "EMAIL_ADDRESS")
    mapping.response_policy = ResponsePolicy()
    return mapping


def model_text(mapping: PlaceholderMap) -> str:
    return f"Mail {mapping.placeholder_for(OWN, 'EMAIL_ADDRESS')} or {INJECTED} today."


def flatten(node: Any, path: tuple = ()) -> dict[tuple, str]:
    if isinstance(node, str):
        return {path: node}
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    found: dict[tuple, str] = {}
    for key, value in items:
        if key not in ("type", "index", "item_id", "output_index", "content_index", "sequence_number"):
            found.update(flatten(value, (*path, key)))
    return found


def run(restorer: EventRestorer, events: list[tuple[str, dict]], delta_event: str) -> tuple[dict, list[dict]]:
    """Per field path of the delta events, the text the client gets, and every event sent."""
    texts: dict[tuple, str] = defaultdict(str)
    sent: list[dict] = []
    for name, data in events:
        out = restorer.restore(name, data)
        sent += [d for _, d in out]
    sent += [d for _, d in restorer.finish()]
    for data in sent:
        if data.get("type") == delta_event or str(data.get("type")).endswith(".delta"):
            kind = data["delta"].get("type") if isinstance(data.get("delta"), dict) else data["type"]
            for path, text in flatten(data).items():
                texts[(kind, *path)] += text
    return texts, sent


def assert_no_prefix_of_injected(sent: list[dict]) -> None:
    joined = "".join("".join(flatten(d).values()) for d in sent)
    assert "mallory" not in joined and "example.net" not in joined


def test_anthropic_known_unknown_and_thinking_fields(mapping: PlaceholderMap):
    text = model_text(mapping)
    events = []
    for char in text:
        for delta in (
            {"type": "text_delta", "text": char, "x_note": char},
            {"type": "future_delta", "payload": {"body": char}},
            {"type": "thinking_delta", "thinking": char},
        ):
            events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    texts, sent = run(MESSAGES.event_restorer(mapping, {}), events, "content_block_delta")
    restored = f"Mail {OWN} or <EMAIL_ADDRESS_REDACTED> today."
    assert texts[("text_delta", "delta", "text")] == restored
    assert texts[("text_delta", "delta", "x_note")] == restored
    assert texts[("future_delta", "delta", "payload", "body")] == restored
    # thinking is signed: it keeps the caller's placeholder, and the made-up value is still redacted
    assert texts[("thinking_delta", "delta", "thinking")] == text.replace(INJECTED, "<EMAIL_ADDRESS_REDACTED>")
    assert_no_prefix_of_injected(sent)
    assert sent[-1]["type"] == "content_block_stop"


def test_responses_known_and_unknown_delta_events_and_fields(mapping: PlaceholderMap):
    text = model_text(mapping)
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events = []
    for char in text:
        events.append(("response.output_text.delta", {"type": "response.output_text.delta", **ids, "delta": char,
                                                      "x_extra": {"note": char}}))  # fmt: skip
        events.append(("response.future_thing.delta", {"type": "response.future_thing.delta", **ids, "text": char}))
    events.append(("response.output_text.done", {"type": "response.output_text.done", **ids, "text": text}))
    texts, sent = run(RESPONSES.event_restorer(mapping, {}), events, "")
    restored = f"Mail {OWN} or <EMAIL_ADDRESS_REDACTED> today."
    assert texts[("response.output_text.delta", "delta")] == restored
    assert texts[("response.output_text.delta", "x_extra", "note")] == restored
    assert texts[("response.future_thing.delta", "text")] == restored
    assert_no_prefix_of_injected(sent)
    done = [d for d in sent if d["type"] == "response.output_text.done"]
    assert done[0]["text"] == restored


def test_token_details_are_dropped_when_the_guard_is_on(mapping: PlaceholderMap):
    logprobs = [{"token": "mallory", "logprob": -0.1, "top_logprobs": [{"token": "mall", "logprob": -2.0}]}]
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    delta = {"type": "response.output_text.delta", **ids, "delta": "Hi", "logprobs": logprobs}
    _texts, sent = run(RESPONSES.event_restorer(mapping, {}), [("response.output_text.delta", delta)], "")
    assert all(d.get("logprobs", []) == [] for d in sent)
    assert "mall" not in str(sent)


def test_chat_logprobs_are_dropped_in_chunks_and_whole_answers(mapping: PlaceholderMap):
    from redaction import ChatStreamRestorer, restore_chat_response

    logprobs = {"content": [{"token": "mallory", "logprob": -0.1, "bytes": [109], "top_logprobs": []}]}
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": logprobs, "finish_reason": None}]}
    assert ChatStreamRestorer(mapping).restore_chunk(chunk)["choices"][0]["logprobs"] is None
    body = {"choices": [{"index": 0, "message": {"content": "Hi"}, "logprobs": logprobs}]}
    assert restore_chat_response(body, mapping)["choices"][0]["logprobs"] is None
    mapping.response_policy = ResponsePolicy(())  # restore-only: kept
    body = {"choices": [{"index": 0, "message": {"content": "Hi"}, "logprobs": logprobs}]}
    assert restore_chat_response(body, mapping)["choices"][0]["logprobs"] == logprobs
