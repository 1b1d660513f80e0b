"""OpenAI Responses API through the proxy, with the official openai SDK."""

from __future__ import annotations

import json
from typing import Any

import openai
from aiohttp import web

from tests.fake_upstream import anthropic_sse, responses_object
from tests.test_proxy_chat import assert_nothing_leaked

PERSON, EMAIL, PHONE = "Jane Roe", "jane.roe@example.com", "212-555-0147"
TEXT = f"Call {PERSON} at {PHONE} or write to {EMAIL}."


def sdk(proxy) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=proxy.base_url, api_key="sk-test", max_retries=0)


async def test_input_string_and_instructions_are_redacted_and_answer_restored(proxy, upstream):
    async with sdk(proxy) as client:
        response = await client.responses.create(model="gpt-4.1", input=TEXT, instructions=f"You assist {PERSON}.")
    assert response.output_text == TEXT
    assert_nothing_leaked(upstream.fake.received[0].raw, [PERSON, EMAIL, PHONE])


async def test_input_items_function_calls_and_outputs_are_redacted(proxy, upstream):
    items: list[Any] = [
        {"role": "developer", "content": f"The customer is {PERSON}."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"Mail {EMAIL} please."}]},
        {"type": "function_call", "call_id": "call_1", "name": "send_mail", "arguments": json.dumps({"to": EMAIL})},
        {"type": "function_call_output", "call_id": "call_1", "output": json.dumps({"status": f"sent to {PERSON}"})},
        {"role": "user", "content": TEXT},
    ]
    tools = [{"type": "function", "name": "send_mail", "description": f"Mail for {PERSON}", "parameters": {}}]
    async with sdk(proxy) as client:
        response = await client.responses.create(model="gpt-4.1", input=items, tools=tools)
    assert response.output_text == TEXT
    raw = upstream.fake.received[0].raw
    assert_nothing_leaked(raw, [PERSON, EMAIL, PHONE])
    sent = json.loads(raw)
    assert sent["input"][2]["name"] == "send_mail" and sent["input"][2]["call_id"] == "call_1"
    assert sent["tools"][0]["name"] == "send_mail"
    assert json.loads(sent["input"][2]["arguments"])["to"].startswith("<EMAIL_ADDRESS_")


async def test_streamed_text_split_one_character_per_event_is_restored(proxy, upstream):
    upstream.fake.piece_size = 1
    async with sdk(proxy) as client:
        stream = await client.responses.create(model="gpt-4.1", input=TEXT, stream=True)
        deltas, done_text, completed = [], None, None
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.output_text.done":
                done_text = event.text
            elif event.type == "response.completed":
                completed = event.response
    assert "".join(deltas) == TEXT and done_text == TEXT
    assert not any("_ADDRESS" in d or "PERSON" in d or "PHONE" in d for d in deltas)  # no placeholder piece
    assert completed is not None and completed.output_text == TEXT


async def test_streamed_function_call_arguments_split_per_character_are_restored(make_proxy, upstream):
    proxy = await make_proxy(deny_list=['Project "Nightjar"'])

    async def call_tool(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        text = body["input"]
        email = text.split("to ")[1].split(" about")[0]
        codename = text.split("about ")[1].rstrip(".")
        arguments = json.dumps({"to": email, "subject": codename})
        item = {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "send_mail", "arguments": ""}
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [("response.output_item.added", {"output_index": 0, "item": item})]
        events += [
            ("response.function_call_arguments.delta", {"item_id": "fc_1", "output_index": 0, "delta": ch})
            for ch in arguments
        ]
        events += [
            ("response.function_call_arguments.done", {"item_id": "fc_1", "output_index": 0, "arguments": arguments}),
            ("response.output_item.done", {"output_index": 0, "item": {**item, "arguments": arguments}}),
            ("response.completed", {"response": responses_object([{**item, "arguments": arguments}])}),
        ]
        for n, (name, data) in enumerate(events):
            await response.write(anthropic_sse(name, {"type": name, "sequence_number": n, **data}))
        return response

    upstream.fake.behaviour = call_tool
    async with sdk(proxy) as client:
        stream = await client.responses.create(
            model="gpt-4.1", input=f'Send a note to {EMAIL} about Project "Nightjar".', stream=True
        )
        pieces, done_arguments = [], None
        async for event in stream:
            if event.type == "response.function_call_arguments.delta":
                pieces.append(event.delta)
            elif event.type == "response.function_call_arguments.done":
                done_arguments = event.arguments
    expected = {"to": EMAIL, "subject": 'Project "Nightjar"'}
    assert json.loads("".join(pieces)) == expected and json.loads(done_arguments) == expected
    assert_nothing_leaked(upstream.fake.received[0].raw, [EMAIL, "Nightjar"])


async def test_image_input_is_refused(proxy, upstream, http):
    body = {
        "model": "gpt-4.1",
        "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}],
    }
    async with http.post(f"{proxy.base_url}/responses", json=body) as response:
        assert response.status == 400
    assert upstream.fake.received == []


async def test_function_call_output_item_is_restored_in_a_whole_answer(proxy, upstream):
    async def call_tool(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        email = body["input"].split("to ")[1].rstrip(".")
        item = {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_9",
            "name": "send_mail",
            "arguments": json.dumps({"to": email}),
            "status": "completed",
        }
        return web.json_response(responses_object([item]))

    upstream.fake.behaviour = call_tool
    async with sdk(proxy) as client:
        response = await client.responses.create(model="gpt-4.1", input=f"Send a note to {EMAIL}.")
    [call] = response.output
    assert call.type == "function_call" and call.name == "send_mail" and call.call_id == "call_9"
    assert json.loads(call.arguments) == {"to": EMAIL}
    assert_nothing_leaked(upstream.fake.received[0].raw, [EMAIL])
