"""The official ``openai`` SDK, used through the proxy exactly as an application would use it.

The only change an application makes is the base URL; everything else (answers, streams, tool
calls, errors and their exception classes) must look as if it had talked to the upstream.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import openai
import pytest
from aiohttp import web
from openai import AsyncOpenAI

from tests.conftest import free_port
from tests.fake_upstream import chat_completion, chunk, sse

NAME = "Jane Roe"
EMAIL = "jane.roe@example.com"
PHONE = "212-555-0187"


@asynccontextmanager
async def sdk(proxy, api_key: str = "sk-test") -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=proxy.base_url, api_key=api_key, max_retries=0, timeout=30) as client:
        yield client


def placeholders(text: str, entity: str) -> set[str]:
    return set(re.findall(rf"<{entity}_\d+>", text))


def assert_no_planted_values(raw: bytes, *values: str) -> None:
    for value in values:
        assert value.encode() not in raw, f"{value!r} reached the upstream"


async def test_non_streaming_answer_is_restored_and_upstream_sees_placeholders(proxy, upstream):
    text = f"Hello, I am {NAME}; write to {EMAIL} or call {PHONE}."
    async with sdk(proxy) as client:
        completion = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": text}]
        )

    assert completion.choices[0].message.content == text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-test"
    assert completion.usage is not None and completion.usage.total_tokens == 20

    [received] = upstream.fake.received
    assert received.path == "/v1/chat/completions"
    assert_no_planted_values(received.raw, NAME, EMAIL, PHONE)
    sent_text = received.json["messages"][0]["content"]
    assert placeholders(sent_text, "PERSON") and placeholders(sent_text, "EMAIL_ADDRESS")
    assert placeholders(sent_text, "PHONE_NUMBER")
    # the SDK's own credential is what the upstream gets when the proxy has none configured
    assert received.headers.get("Authorization") == "Bearer sk-test"


async def test_stream_none_as_the_sdk_types_allow_is_a_plain_answer(proxy, upstream):
    """The SDK's own type for ``stream`` is Optional: None must work like False."""
    async with sdk(proxy) as client:
        completion = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": f"I am {NAME}."}], stream=None
        )
    assert completion.choices[0].message.content == f"I am {NAME}."
    assert_no_planted_values(upstream.fake.received[0].raw, NAME)


async def test_streaming_one_character_per_event_is_restored(proxy, upstream):
    upstream.fake.piece_size = 1
    text = f"Hi, I am {NAME} and my e-mail is {EMAIL}."
    async with sdk(proxy) as client:
        stream = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": text}], stream=True
        )
        pieces = []
        finish_reasons = []
        async for event in stream:
            for choice in event.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                if choice.finish_reason:
                    finish_reasons.append(choice.finish_reason)

    assert "".join(pieces) == text
    # no fragment of a placeholder ever reaches the application
    assert not any("<" in piece or ">" in piece for piece in pieces)
    assert finish_reasons == ["stop"]
    [received] = upstream.fake.received
    assert received.json["stream"] is True
    assert_no_planted_values(received.raw, NAME, EMAIL)


async def test_streaming_with_include_usage_delivers_the_usage_chunk(proxy, upstream):
    upstream.fake.piece_size = 1
    text = f"Please greet {NAME} ({EMAIL})."
    async with sdk(proxy) as client:
        stream = await client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": text}],
            stream=True,
            stream_options={"include_usage": True},
        )
        events = [event async for event in stream]

    content = "".join(c.delta.content or "" for event in events for c in event.choices)
    assert content == text
    last = events[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (1, 1, 2)
    assert upstream.fake.received[0].json["stream_options"] == {"include_usage": True}
    assert_no_planted_values(upstream.fake.received[0].raw, NAME, EMAIL)


def tool_history() -> list[dict]:
    """A conversation where the model already called a tool with an e-mail, and got a result."""
    return [
        {"role": "user", "content": f"Find the customer whose e-mail is {EMAIL} and send them a note."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_lookup_1",
                    "type": "function",
                    "function": {"name": "lookup_customer", "arguments": json.dumps({"email": EMAIL})},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_lookup_1",
            "content": json.dumps({"name": NAME, "phone": PHONE, "email": EMAIL}),
        },
    ]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "send_email",
            "description": "Send an e-mail",
            "parameters": {
                "type": "object",
                "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
                "required": ["to", "body"],
            },
        },
    }
]


def placeholders_received(body: dict) -> tuple[str, str]:
    """The e-mail placeholder from the history's tool call, and the name's from the tool result."""
    history_call = body["messages"][1]["tool_calls"][0]
    arguments = json.loads(history_call["function"]["arguments"])  # still valid JSON after redaction
    [email] = placeholders(arguments["email"], "EMAIL_ADDRESS")
    [name] = placeholders(body["messages"][2]["content"], "PERSON")
    return email, name


def assert_tool_history_sanitized(body: dict, raw: bytes) -> None:
    assert_no_planted_values(raw, NAME, EMAIL, PHONE)
    history_call = body["messages"][1]["tool_calls"][0]
    assert history_call["id"] == "call_lookup_1"
    assert history_call["function"]["name"] == "lookup_customer"
    assert body["messages"][2]["tool_call_id"] == "call_lookup_1"
    assert body["tools"][0]["function"]["name"] == "send_email"
    # the same e-mail in the user's text and in the tool arguments gets the same placeholder
    email, _ = placeholders_received(body)
    assert email in body["messages"][0]["content"]


async def test_tool_calls_both_ways(proxy, upstream):
    async def call_send_email(request: web.Request, body: dict) -> web.Response:
        email, name = placeholders_received(body)
        arguments = json.dumps({"to": email, "body": f"Dear {name}, your order has shipped."})
        tool_call = {
            "id": "call_send_2",
            "type": "function",
            "function": {"name": "send_email", "arguments": arguments},
        }
        return web.json_response(chat_completion(None, tool_calls=[tool_call]))

    upstream.fake.behaviour = call_send_email
    async with sdk(proxy) as client:
        completion = await client.chat.completions.create(model="gpt-test", messages=tool_history(), tools=TOOLS)

    [received] = upstream.fake.received
    assert_tool_history_sanitized(received.json, received.raw)

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.id == "call_send_2" and call.function.name == "send_email"
    assert json.loads(call.function.arguments) == {"to": EMAIL, "body": f"Dear {NAME}, your order has shipped."}


async def test_streamed_tool_call_arguments_are_restored(proxy, upstream):
    async def stream_send_email(request: web.Request, body: dict) -> web.StreamResponse:
        email, name = placeholders_received(body)
        arguments = json.dumps({"to": email, "body": f"Dear {name}, thanks."})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        head = {
            "index": 0,
            "id": "call_send_3",
            "type": "function",
            "function": {"name": "send_email", "arguments": ""},
        }
        await response.write(sse(chunk({"role": "assistant", "content": None, "tool_calls": [head]})))
        for character in arguments:  # one character per event: placeholders split across many events
            await response.write(sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": character}}]})))
        await response.write(sse(chunk({}, "tool_calls")))
        await response.write(sse("[DONE]"))
        await response.write_eof()
        return response

    upstream.fake.behaviour = stream_send_email
    async with sdk(proxy) as client:
        stream = await client.chat.completions.create(
            model="gpt-test", messages=tool_history(), tools=TOOLS, stream=True
        )
        arguments, names, finish = "", [], None
        async for event in stream:
            for choice in event.choices:
                for call in choice.delta.tool_calls or []:
                    assert call.index == 0
                    if call.function and call.function.name:
                        names.append(call.function.name)
                    if call.function and call.function.arguments:
                        arguments += call.function.arguments
                finish = choice.finish_reason or finish

    [received] = upstream.fake.received
    assert_tool_history_sanitized(received.json, received.raw)
    assert names == ["send_email"] and finish == "tool_calls"
    assert json.loads(arguments) == {"to": EMAIL, "body": f"Dear {NAME}, thanks."}


async def test_upstream_400_surfaces_as_bad_request_error(proxy, upstream):
    async def reject(request: web.Request, body: dict) -> web.Response:
        [name] = placeholders(body["messages"][0]["content"], "PERSON")
        error = {
            "message": f"Invalid 'temperature' for the message about {name}.",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_value",
        }
        return web.json_response({"error": error}, status=400, headers={"x-request-id": "req_upstream_1"})

    upstream.fake.behaviour = reject
    async with sdk(proxy) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": f"My name is {NAME}."}], temperature=0.5
            )

    error = caught.value
    assert error.status_code == 400
    assert (error.type, error.param, error.code) == ("invalid_request_error", "temperature", "invalid_value")
    # the upstream's own error is passed through, its placeholder turned back into the value
    assert NAME in error.message and "<PERSON_" not in error.message
    assert len(upstream.fake.received) == 1
    assert_no_planted_values(upstream.fake.received[0].raw, NAME)


async def test_malformed_request_is_refused_as_bad_request_and_not_forwarded(proxy, upstream):
    async with sdk(proxy) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": "hello"}],
                extra_body={"messages": f"My name is {NAME}"},  # a string where an array belongs
            )
    error = caught.value
    assert error.status_code == 400
    assert error.type == "invalid_request_error" and error.code == "invalid_request"
    assert "messages" in error.message and NAME not in error.message
    assert upstream.fake.received == []


async def test_body_too_large_surfaces_as_413_status_error(make_proxy, upstream):
    proxy = await make_proxy(max_body_bytes=4096)
    async with sdk(proxy) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "word " * 2000}]
            )
    error = caught.value
    # the SDK has no dedicated class for 413: the base status error, not a 400 or 5xx one
    assert type(error) is openai.APIStatusError
    assert error.status_code == 413 and error.code == "request_too_large"
    assert upstream.fake.received == []


async def test_unreachable_upstream_surfaces_as_internal_server_error(make_proxy, upstream):
    proxy = await make_proxy(upstream=f"http://127.0.0.1:{free_port()}/v1")
    async with sdk(proxy) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": f"I am {NAME}."}]
            )
    error = caught.value
    assert error.status_code == 502 and error.code == "upstream_unreachable"
    assert NAME not in error.message


async def test_wrong_proxy_key_surfaces_as_authentication_error(make_proxy, upstream):
    proxy = await make_proxy(client_api_keys={"team-a": "proxy-key-for-team-a"}, upstream_api_key="sk-upstream")
    async with sdk(proxy, api_key="not-the-proxy-key") as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello"}])
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert upstream.fake.received == []

    async with sdk(proxy, api_key="proxy-key-for-team-a") as client:
        completion = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hello"}]
        )
    assert completion.choices[0].message.content == "hello"
    # the upstream gets the configured upstream key, never the client's proxy key
    assert upstream.fake.received[0].headers.get("Authorization") == "Bearer sk-upstream"
