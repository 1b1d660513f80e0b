"""The official ``anthropic`` SDK against POST /v1/messages, used as an application would use it.

The application only changes the base URL; answers, streams (their event grammar included), tool
use and errors must look as if it had talked to Anthropic, while the upstream sees placeholders.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anthropic
import pytest
from aiohttp import web
from anthropic import AsyncAnthropic

from tests.conftest import free_port
from tests.fake_upstream import anthropic_message, anthropic_sse

NAME = "Jane Roe"
EMAIL = "jane.roe@example.com"
PHONE = "212-555-0147"
CARD = "4111 1111 1111 1111"
TERM = 'Project "Nightjar"'  # a deny-list term with a double quote: must be JSON-escaped on the way back
MODEL = "claude-test"
CLIENT_KEY = "sk-ant-test"
PLANTED = (NAME, EMAIL, PHONE, CARD, CARD.replace(" ", ""))


@asynccontextmanager
async def sdk(proxy, api_key: str = CLIENT_KEY) -> AsyncIterator[AsyncAnthropic]:
    async with AsyncAnthropic(base_url=proxy.url, api_key=api_key, max_retries=0, timeout=30) as client:
        yield client


def sdk_headers(client: AsyncAnthropic) -> dict[str, str]:
    """The API version and credential headers this SDK version sends (x-api-key or a bearer token)."""
    headers = {**client.default_headers, **client.auth_headers}
    wanted = ("anthropic-version", "x-api-key", "authorization")
    return {k.lower(): v for k, v in headers.items() if k.lower() in wanted and isinstance(v, str)}


def lower_keys(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def placeholders(text: str, entity: str) -> list[str]:
    return re.findall(rf"<{entity}_\d+>", text)


def assert_nothing_planted_reached(received, *values: str) -> None:
    headers = "\n".join(f"{k}: {v}" for k, v in received.headers.items())
    for value in values:
        assert value.encode() not in received.raw, f"{value!r} reached the upstream body"
        assert value not in headers, f"{value!r} reached the upstream headers"


# --- 1. non-streaming text ---------------------------------------------------------------------

SYSTEM_TEXT = f"You assist {NAME}. Her card number is {CARD}."
USER_BLOCKS = [
    {"type": "text", "text": f"Please write to {EMAIL} today. "},
    {"type": "text", "text": f"Or call {PHONE}, {NAME} said."},
]
ECHO = "".join(block["text"] for block in USER_BLOCKS)  # the fake echoes the last user text


def system_text(system: str | list[dict[str, Any]]) -> str:
    return system if isinstance(system, str) else "".join(block["text"] for block in system)


@pytest.mark.parametrize(
    "system",
    [SYSTEM_TEXT, [{"type": "text", "text": SYSTEM_TEXT, "cache_control": {"type": "ephemeral"}}]],
    ids=["system-string", "system-blocks"],
)
async def test_non_streaming_is_redacted_upstream_and_restored(proxy, upstream, system):
    async with sdk(proxy) as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=256, system=system, messages=[{"role": "user", "content": USER_BLOCKS}]
        )
        sent_by_sdk = sdk_headers(client)

    assert message.type == "message" and message.role == "assistant"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == ECHO
    assert message.stop_reason == "end_turn" and message.model == MODEL

    [received] = upstream.fake.received
    assert received.path == "/v1/messages"
    assert_nothing_planted_reached(received, *PLANTED)
    body = received.json
    sent_system = system_text(body["system"])
    assert type(body["system"]) is type(system)  # the shape of `system` is kept
    if isinstance(system, list):
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert placeholders(sent_system, "PERSON") and placeholders(sent_system, "CREDIT_CARD")
    sent_user = body["messages"][0]["content"]
    assert [block["type"] for block in sent_user] == ["text", "text"]
    assert placeholders(sent_user[0]["text"], "EMAIL_ADDRESS")
    assert placeholders(sent_user[1]["text"], "PHONE_NUMBER")
    # one person, one placeholder, wherever it appears
    assert placeholders(sent_user[1]["text"], "PERSON") == placeholders(sent_system, "PERSON")
    assert body["model"] == MODEL and body["max_tokens"] == 256

    # with no upstream key configured, the client's credential and API version go upstream as is
    assert CLIENT_KEY in "".join(sent_by_sdk.values()) and "anthropic-version" in sent_by_sdk
    forwarded = lower_keys(received.headers)
    assert {k: forwarded.get(k) for k in sent_by_sdk} == sent_by_sdk


async def test_configured_upstream_key_replaces_the_clients(make_proxy, upstream):
    proxy = await make_proxy(upstream_api_key="sk-ant-config")
    async with sdk(proxy) as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": f"Hello, I am {NAME}."}]
        )
        version = client.default_headers["anthropic-version"]
    assert message.content[0].text == f"Hello, I am {NAME}."

    [received] = upstream.fake.received
    forwarded = lower_keys(received.headers)
    assert forwarded.get("x-api-key") == "sk-ant-config"
    assert "authorization" not in forwarded
    assert CLIENT_KEY not in "\n".join(received.headers.values())
    assert forwarded.get("anthropic-version") == version
    assert_nothing_planted_reached(received, NAME)


# --- 2. streaming text ---------------------------------------------------------------------------

STREAM_TEXT = f"Hi, I am {NAME}, mail {EMAIL} or call {PHONE}; card {CARD}."


async def test_sdk_stream_one_character_per_event_is_restored(proxy, upstream):
    upstream.fake.piece_size = 1
    async with (
        sdk(proxy) as client,
        client.messages.stream(
            model=MODEL, max_tokens=256, messages=[{"role": "user", "content": STREAM_TEXT}]
        ) as stream,
    ):
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()

    assert "".join(pieces) == STREAM_TEXT
    assert not any("<" in piece or ">" in piece for piece in pieces)
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == STREAM_TEXT
    assert final.stop_reason == "end_turn"

    [received] = upstream.fake.received
    assert received.json["stream"] is True
    assert_nothing_planted_reached(received, *PLANTED)
    sent = received.json["messages"][0]["content"]
    for entity in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD"):
        assert placeholders(sent, entity), entity


def parse_sse(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE event; comments and blank lines ignored."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].removeprefix(" "))
        if name is not None or data:
            events.append((name, "\n".join(data)))
    return events


async def test_raw_stream_keeps_anthropic_event_grammar(proxy, upstream, http: aiohttp.ClientSession):
    upstream.fake.piece_size = 1
    request = {
        "model": MODEL,
        "max_tokens": 256,
        "stream": True,
        "messages": [{"role": "user", "content": [{"type": "text", "text": STREAM_TEXT}]}],
    }
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    async with http.post(f"{proxy.url}/v1/messages", json=request, headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        raw = await response.text()

    # a client using Anthropic's own header scheme: x-api-key and anthropic-version forwarded as sent
    [received] = upstream.fake.received
    forwarded = lower_keys(received.headers)
    assert (forwarded.get("x-api-key"), forwarded.get("anthropic-version")) == (CLIENT_KEY, "2023-06-01")
    assert_nothing_planted_reached(received, *PLANTED)

    events = parse_sse(raw)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) <= {"ping", "content_block_delta"}
    payloads = []
    for name, data in events:
        payload = json.loads(data)  # every data line is one JSON object
        assert payload["type"] == name
        payloads.append(payload)

    deltas = [p["delta"] for p in payloads if p["type"] == "content_block_delta"]
    assert all(delta["type"] == "text_delta" and set(delta) == {"type", "text"} for delta in deltas)
    assert all(p["index"] == 0 for p in payloads if p["type"].startswith("content_block"))
    texts = [delta["text"] for delta in deltas]
    # no piece of a placeholder ever reaches the client (the original text has no '<' or '>')
    assert not any("<" in text or ">" in text for text in texts)
    assert "".join(texts) == STREAM_TEXT
    assert payloads[0]["message"]["model"] == MODEL
    assert payloads[-2]["delta"]["stop_reason"] == "end_turn"
    assert "<PERS" not in raw and "<EMAIL" not in raw and "<PHONE" not in raw and "<CREDIT" not in raw


async def test_text_that_only_looks_like_a_placeholder_start_is_released_before_block_stop(
    proxy, upstream, http: aiohttp.ClientSession
):
    """The proxy holds back a possible placeholder prefix; at the block's end it must come out, in that block."""
    upstream.fake.piece_size = 1
    text = f"Dear {NAME}, the tag reads <PERS"
    request = {"model": MODEL, "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": text}]}
    async with http.post(f"{proxy.url}/v1/messages", json=request, headers={"x-api-key": CLIENT_KEY}) as response:
        assert response.status == 200
        events = [(name, json.loads(data)) for name, data in parse_sse(await response.text())]

    stop = [name for name, _ in events].index("content_block_stop")
    before = "".join(p["delta"]["text"] for name, p in events[:stop] if name == "content_block_delta")
    after = [name for name, _ in events[stop:]]
    assert before == text
    assert after == ["content_block_stop", "message_delta", "message_stop"]
    assert_nothing_planted_reached(upstream.fake.received[0], NAME)


# --- 3. tool use both ways -----------------------------------------------------------------------

INPUT_SCHEMA = {
    "type": "object",
    "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
    "required": ["to", "body"],
}
TOOLS = [
    {"name": "send_email", "description": f"Send an e-mail; replies go to {EMAIL}.", "input_schema": INPUT_SCHEMA},
    {
        "name": "lookup_customer",
        "description": "Find a customer",
        "input_schema": {"type": "object", "properties": {"email": {"type": "string"}}},
    },
]


def tool_history() -> list[dict[str, Any]]:
    """The model already looked a customer up twice; results as a string and as text blocks."""
    return [
        {"role": "user", "content": f"Find {NAME} ({EMAIL}) and tell her about {TERM}."},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking the customer up."},
                # "type" is a structural key elsewhere; inside `input` it is the application's data
                {
                    "type": "tool_use",
                    "id": "toolu_lookup_1",
                    "name": "lookup_customer",
                    "input": {"email": EMAIL, "type": NAME},
                },
                {"type": "tool_use", "id": "toolu_lookup_2", "name": "lookup_customer", "input": {"email": EMAIL}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_lookup_1", "content": f"{NAME}, phone {PHONE}"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_lookup_2",
                    "content": [{"type": "text", "text": f"Card on file: {CARD}, owner {NAME}."}],
                },
                {"type": "text", "text": f"Now e-mail her about {TERM}."},
            ],
        },
    ]


def received_placeholders(body: dict[str, Any]) -> tuple[str, str, str]:
    """The e-mail, name and deny-list term placeholders the upstream was sent."""
    tool_input = body["messages"][1]["content"][1]["input"]
    [email] = placeholders(tool_input["email"], "EMAIL_ADDRESS")
    [name] = placeholders(tool_input["type"], "PERSON")
    [term] = placeholders(body["messages"][2]["content"][2]["text"], "SENSITIVE_TERM")
    return email, name, term


def assert_tool_request_sanitized(received) -> None:
    assert_nothing_planted_reached(received, *PLANTED, "Nightjar")
    body = received.json
    assert [tool["name"] for tool in body["tools"]] == ["send_email", "lookup_customer"]
    assert body["tools"][0]["input_schema"] == INPUT_SCHEMA
    email, name, term = received_placeholders(body)
    assert placeholders(body["tools"][0]["description"], "EMAIL_ADDRESS") == [email]
    assert placeholders(body["messages"][0]["content"], "EMAIL_ADDRESS") == [email]
    assert placeholders(body["messages"][0]["content"], "SENSITIVE_TERM") == [term]

    assistant = body["messages"][1]["content"]
    assert [(b["type"], b.get("id"), b.get("name")) for b in assistant] == [
        ("text", None, None),
        ("tool_use", "toolu_lookup_1", "lookup_customer"),
        ("tool_use", "toolu_lookup_2", "lookup_customer"),
    ]
    assert assistant[1]["input"] == {"email": email, "type": name}  # keys kept, values replaced
    assert assistant[2]["input"] == {"email": email}

    results = body["messages"][2]["content"]
    assert [(b["type"], b.get("tool_use_id")) for b in results] == [
        ("tool_result", "toolu_lookup_1"),
        ("tool_result", "toolu_lookup_2"),
        ("text", None),
    ]
    assert name in results[0]["content"] and placeholders(results[0]["content"], "PHONE_NUMBER")
    [block] = results[1]["content"]
    assert block["type"] == "text" and name in block["text"] and placeholders(block["text"], "CREDIT_CARD")


EXPECTED_INPUT = {"to": EMAIL, "body": f"Dear {NAME}, news on {TERM}."}


def answer_input(body: dict[str, Any]) -> dict[str, str]:
    email, name, term = received_placeholders(body)
    return {"to": email, "body": f"Dear {name}, news on {term}."}


async def test_tool_use_both_ways_non_streaming(make_proxy, upstream):
    proxy = await make_proxy(deny_list=[TERM])

    async def call_send_email(request: web.Request, body: dict) -> web.Response:
        block = {"type": "tool_use", "id": "toolu_send_3", "name": "send_email", "input": answer_input(body)}
        return web.json_response(anthropic_message([block], model=body["model"], stop="tool_use"))

    upstream.fake.behaviour = call_send_email
    async with sdk(proxy) as client:
        message = await client.messages.create(model=MODEL, max_tokens=256, tools=TOOLS, messages=tool_history())

    [received] = upstream.fake.received
    assert_tool_request_sanitized(received)
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use"
    assert (block.id, block.name) == ("toolu_send_3", "send_email")
    assert block.input == EXPECTED_INPUT


async def test_streamed_tool_use_input_json_is_restored_and_stays_valid(make_proxy, upstream):
    proxy = await make_proxy(deny_list=[TERM])

    async def stream_send_email(request: web.Request, body: dict) -> web.StreamResponse:
        tool_input = answer_input(body)
        partial_json = json.dumps(tool_input)
        lead = f"Writing to {tool_input['to']}."
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        start = anthropic_message([], model=body["model"], stop=None)  # type: ignore[arg-type]
        events: list[tuple[str, dict]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start",
             {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            *[("content_block_delta",
               {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": character}})
              for character in lead],
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("content_block_start",
             {"type": "content_block_start", "index": 1,
              "content_block": {"type": "tool_use", "id": "toolu_send_4", "name": "send_email", "input": {}}}),
            # one character per event: placeholders (and their JSON) split across many events
            *[("content_block_delta",
               {"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": character}})
              for character in partial_json],
            ("content_block_stop", {"type": "content_block_stop", "index": 1}),
            ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                               "usage": {"output_tokens": 20}}),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        for name, data in events:
            await response.write(anthropic_sse(name, data))
        await response.write_eof()
        return response

    upstream.fake.behaviour = stream_send_email
    partial: list[str] = []
    async with (
        sdk(proxy) as client,
        client.messages.stream(model=MODEL, max_tokens=256, tools=TOOLS, messages=tool_history()) as stream,
    ):
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial.append(event.delta.partial_json)
        final = await stream.get_final_message()

    [received] = upstream.fake.received
    assert received.json["stream"] is True
    assert_tool_request_sanitized(received)

    assert final.stop_reason == "tool_use"
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.content[0].text == f"Writing to {EMAIL}."
    tool_use = final.content[1]
    assert (tool_use.id, tool_use.name) == ("toolu_send_4", "send_email")
    assert tool_use.input == EXPECTED_INPUT
    # the concatenated deltas are the JSON of the original values, quote escaped
    assert json.loads("".join(partial)) == EXPECTED_INPUT
    assert '\\"Nightjar\\"' in "".join(partial)
    assert not any("<" in piece for piece in partial)


# --- 4. errors in Anthropic's format -------------------------------------------------------------


def assert_anthropic_error(error: anthropic.APIStatusError, status: int, error_type: str) -> str:
    assert error.status_code == status
    body = error.response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


async def test_image_block_is_refused_as_bad_request_and_not_forwarded(proxy, upstream):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    async with sdk(proxy) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(
                model=MODEL,
                max_tokens=64,
                messages=[{"role": "user", "content": [{"type": "text", "text": f"Is this {NAME}?"}, image]}],
            )
    message = assert_anthropic_error(caught.value, 400, "invalid_request_error")
    assert "image" in message and NAME not in message
    assert upstream.fake.received == []


async def test_system_role_inside_messages_is_a_bad_request(proxy, upstream):
    async with sdk(proxy) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(
                model=MODEL,
                max_tokens=64,
                messages=[
                    {"role": "system", "content": f"You assist {NAME}."},  # type: ignore[misc,list-item]
                    {"role": "user", "content": "hello"},
                ],
            )
    message = assert_anthropic_error(caught.value, 400, "invalid_request_error")
    assert "role" in message and NAME not in message
    assert upstream.fake.received == []


async def test_upstream_rate_limit_passes_through_as_rate_limit_error(proxy, upstream):
    async def rate_limited(request: web.Request, body: dict) -> web.Response:
        [name] = placeholders(body["messages"][0]["content"], "PERSON")
        error = {"type": "error", "error": {"type": "rate_limit_error", "message": f"Slow down, {name}."}}
        return web.json_response(error, status=429, headers={"request-id": "req_upstream_429"})

    upstream.fake.behaviour = rate_limited
    async with sdk(proxy) as client:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(
                model=MODEL, max_tokens=64, messages=[{"role": "user", "content": f"I am {NAME}."}]
            )
    message = assert_anthropic_error(caught.value, 429, "rate_limit_error")
    assert message == f"Slow down, {NAME}."  # the upstream's error, its placeholder restored
    assert caught.value.request_id == "req_upstream_429"
    assert len(upstream.fake.received) == 1  # max_retries=0: one attempt, no retry by the proxy
    assert_nothing_planted_reached(upstream.fake.received[0], NAME)


async def test_unreachable_upstream_is_a_502_in_anthropic_format(make_proxy, upstream):
    proxy = await make_proxy(upstream=f"http://127.0.0.1:{free_port()}/v1")
    async with sdk(proxy) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client.messages.create(
                model=MODEL, max_tokens=64, messages=[{"role": "user", "content": f"I am {NAME}."}]
            )
    assert isinstance(caught.value, anthropic.InternalServerError)
    message = assert_anthropic_error(caught.value, 502, "api_error")
    assert NAME not in message


async def test_proxy_keys_with_anthropic_sdk(make_proxy, upstream, http: aiohttp.ClientSession):
    proxy = await make_proxy(client_api_keys={"team": "proxy-key"}, upstream_api_key="sk-ant-upstream")

    async with sdk(proxy, api_key="not-the-proxy-key") as client:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hello"}])
    assert_anthropic_error(caught.value, 401, "authentication_error")
    assert upstream.fake.received == []

    async with sdk(proxy, api_key="proxy-key") as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hello"}]
        )
    assert message.content[0].text == "hello"
    [received] = upstream.fake.received
    # the upstream gets the configured key, never the client's proxy key
    assert lower_keys(received.headers).get("x-api-key") == "sk-ant-upstream"
    assert "authorization" not in lower_keys(received.headers)

    # the same with Anthropic's x-api-key header scheme
    request = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    for key, status in (("not-the-proxy-key", 401), ("proxy-key", 200)):
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        async with http.post(f"{proxy.url}/v1/messages", json=request, headers=headers) as response:
            assert response.status == status
            body = await response.json()
        if status == 401:
            assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        else:
            assert body["content"] == [{"type": "text", "text": "hi"}]
    assert len(upstream.fake.received) == 2
    assert lower_keys(upstream.fake.received[1].headers).get("x-api-key") == "sk-ant-upstream"
    assert "proxy-key" not in "\n".join(received.headers.values())


# --- 5. the log ----------------------------------------------------------------------------------


async def test_exchanges_are_logged_encrypted_with_counts_and_original_request(proxy, upstream):
    upstream.fake.piece_size = 3
    async with sdk(proxy) as client:
        await client.messages.create(
            model=MODEL, max_tokens=256, system=SYSTEM_TEXT, messages=[{"role": "user", "content": USER_BLOCKS}]
        )
        async with client.messages.stream(
            model=MODEL, max_tokens=256, messages=[{"role": "user", "content": f"I am {NAME}, {EMAIL}."}]
        ) as stream:
            await stream.get_final_message()

    whole, streamed = await proxy.records()
    assert (whole.endpoint, whole.status, whole.outcome, whole.model, whole.stream) == (
        "/v1/messages", 200, "ok", MODEL, False,
    )  # fmt: skip
    assert (streamed.endpoint, streamed.status, streamed.stream) == ("/v1/messages", 200, True)
    assert whole.entity_counts == {"PERSON": 1, "CREDIT_CARD": 1, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    assert streamed.entity_counts == {"PERSON": 1, "EMAIL_ADDRESS": 1}

    original = json.loads(whole.original_request)
    assert original["system"] == SYSTEM_TEXT and original["messages"][0]["content"] == USER_BLOCKS
    assert whole.sanitized_request == upstream.fake.received[0].raw
    assert whole.mapping is not None and {entry["value"] for entry in whole.mapping.values()} >= {NAME, EMAIL}
    assert json.loads(whole.response)["content"][0]["text"] == ECHO
    assert json.loads(streamed.original_request)["messages"][0]["content"] == f"I am {NAME}, {EMAIL}."

    # at rest, nothing is readable
    database = proxy.database_file()
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    for value in PLANTED:
        assert value.encode() not in stored


def test_thinking_keeps_its_placeholders_so_its_signature_stays_valid():
    """Signed thinking must come back unchanged in the next turn: it is not restored on the way
    out, so what the client resends holds placeholders, not values."""
    from redaction import MESSAGES, PlaceholderMap

    mapping = PlaceholderMap()
    person = mapping.placeholder_for("Jane Roe", "PERSON")
    answer = {
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": f"The user is {person}.", "signature": "sig=="},
            {"type": "text", "text": f"Hello {person}."},
        ],
    }
    restored = MESSAGES.restore_body(answer, mapping, {})
    assert restored["content"][0] == {"type": "thinking", "thinking": f"The user is {person}.", "signature": "sig=="}
    assert restored["content"][1]["text"] == "Hello Jane Roe."
    events = MESSAGES.event_restorer(mapping, {})
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": person}}
    [(_, out)] = events.restore("content_block_delta", delta)
    assert out["delta"]["thinking"] == person


async def test_an_anthropic_path_the_proxy_does_not_serve_answers_in_anthropic_shape(proxy, upstream):
    """count_tokens is not served: the SDK must read the 404 as a NotFoundError (not fail on an
    OpenAI-shaped body), and nothing is forwarded."""
    async with sdk(proxy) as client:
        with pytest.raises(anthropic.NotFoundError) as caught:
            await client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    assert_anthropic_error(caught.value, 404, "not_found_error")
    assert upstream.fake.received == []
