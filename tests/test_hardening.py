"""Leak paths and failure modes found in review, checked end to end over HTTP."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fake_upstream import chat_completion, chunk, sse
from tests.test_proxy_chat import assert_nothing_leaked, assert_openai_error, chat_url, chunks_of, user_body

EMAIL = "jane.roe@example.com"
PERSON = "Jane Roe"
PHONE = "212-555-0147"


def tool_history(arguments: str, tool_result: str = "done") -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "Please handle it."},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "run", "arguments": arguments}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": tool_result},
        ],
    }


async def test_nested_json_arguments_and_json_tool_results_do_not_leak(proxy, upstream, http):
    inner = json.dumps({"email": EMAIL, "to": f"Call {PERSON} at {PHONE}"})
    result = json.dumps({"customer": "Fran\u00e7ois M\u00fcller", "phone": 2125550147})  # \\u escapes, a number
    body = tool_history(json.dumps({"tool": "send", "arguments": inner}), result)
    async with http.post(chat_url(proxy), json=body) as response:
        assert response.status == 200, await response.text()
    raw = upstream.fake.received[0].raw
    assert_nothing_leaked(raw, [EMAIL, PERSON, PHONE, "2125550147", "Fran\u00e7ois", "Fran\\u00e7ois"])
    sent = json.loads(raw)
    outer = json.loads(sent["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert json.loads(outer["arguments"])["email"].startswith("<EMAIL_ADDRESS_")


async def test_disguised_values_are_caught_and_restored_exactly(proxy, upstream, http):
    card = "4111\u00a01111\u00a01111\u00a01111"  # non-breaking spaces, as pasted from a web page
    email = "jane\u200b.roe@example.com"  # a zero-width space inside
    wide = "\uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11"
    text = f"Card {card}, mail {email}, full-width card {wide}."
    async with http.post(chat_url(proxy), json=user_body(text)) as response:
        answer = await response.json()
    assert answer["choices"][0]["message"]["content"] == text
    raw = upstream.fake.received[0].raw.decode()
    for fragment in ("4111", "1111", "jane", "roe@", "\uff14\uff11"):
        assert fragment not in raw, fragment


async def test_a_lone_surrogate_next_to_a_value_is_detected_not_a_503(proxy, upstream, http):
    """JSON may escape a lone surrogate; spaCy could not encode the text and every such request was
    refused as "detector unavailable". The detector now reads it as U+FFFD, one character for one."""
    text = f"Please call {PERSON}\ud800 at {PHONE}\udc00 and mail {EMAIL}."
    raw = json.dumps(user_body(text)).encode()  # the surrogates stay escapes: valid JSON
    async with http.post(chat_url(proxy), data=raw, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 200
        answer = json.loads(await response.read())
    assert answer["choices"][0]["message"]["content"] == text
    assert_nothing_leaked(upstream.fake.received[0].raw, [PERSON, PHONE, EMAIL])
    (record,) = await proxy.records()  # the log holds the exchange, surrogates and all
    assert record.mapping is not None and PERSON in "".join(v["value"] for v in record.mapping.values())


async def test_value_in_a_field_that_cannot_be_rewritten_blocks_the_request(proxy, upstream, http):
    body = user_body(f"Write to {EMAIL}.")
    body["tools"] = [{"type": "function", "function": {"name": "mail_jane.roe@example.com", "parameters": {}}}]
    async with http.post(chat_url(proxy), json=body) as response:
        assert response.status == 400
        payload = await response.json()
    assert_openai_error(payload, "content_not_inspectable")
    assert EMAIL not in json.dumps(payload)
    assert upstream.fake.received == []


async def test_metadata_keys_and_structural_names_inside_metadata_are_inspected(proxy, upstream, http):
    body = user_body("Hello.", metadata={EMAIL: "vip", "id": f"{PERSON} {PHONE}"})
    async with http.post(chat_url(proxy), json=body) as response:
        assert response.status == 200
    assert_nothing_leaked(upstream.fake.received[0].raw, [EMAIL, PERSON, PHONE])


async def test_unknown_role_and_unprintable_model_are_400(proxy, upstream, http):
    for body in (
        {"model": "m", "messages": [{"role": EMAIL, "content": "hi"}]},
        {"model": "gpt\ud800", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "m" * 300, "messages": [{"role": "user", "content": "hi"}]},
    ):
        raw = json.dumps(body).encode()  # \ud800 stays an escape: valid JSON, not valid UTF-8 text
        async with http.post(chat_url(proxy), data=raw, headers={"Content-Type": "application/json"}) as response:
            assert response.status == 400
            assert EMAIL not in await response.text()
    assert upstream.fake.received == []


async def test_structured_output_content_is_restored_as_valid_json(make_proxy, upstream, http):
    proxy = await make_proxy(deny_list=['Project "Nightjar"'])

    async def answer_json(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        placeholder = body["messages"][-1]["content"].split("codename ")[1].rstrip(".")
        return web.json_response(chat_completion(json.dumps({"codename": placeholder})))

    upstream.fake.behaviour = answer_json
    body = user_body('Report on codename Project "Nightjar".', response_format={"type": "json_object"})
    async with http.post(chat_url(proxy), json=body) as response:
        answer = await response.json()
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"codename": 'Project "Nightjar"'}


async def test_surprising_upstream_chunk_ends_the_stream_in_band(proxy, upstream, http):
    async def odd_stream(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        placeholder = body["messages"][-1]["content"].split("for ")[1].rstrip(".")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(chunk({"content": "Dear " + placeholder[:4]})))  # held back: a prefix
        await response.write(sse(chunk({"content": None, "tool_calls": None}, "stop")))
        await response.write(sse(chunk({"content": "\ud83d"})))  # a lone surrogate
        await response.write(sse("[DONE]"))
        return response

    upstream.fake.behaviour = odd_stream
    async with http.post(chat_url(proxy), json=user_body(f"A letter for {PERSON}.", stream=True)) as response:
        assert response.status == 200
        raw = await response.read()
    chunks = chunks_of(raw)
    assert raw.count(b"data: [DONE]") == 1
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    assert text.startswith("Dear <PER")  # the unfinished prefix is released verbatim, never lost


async def test_storage_failure_refuses_requests_until_the_log_works_again(proxy, upstream, http):
    proxy.state.writer.healthy = False  # as after a record could not be written
    async with http.post(chat_url(proxy), json=user_body(f"Hi, I am {PERSON}.")) as response:
        assert response.status == 503
        assert_openai_error(await response.json(), "storage_unavailable")
    assert upstream.fake.received == []
    async with http.get(f"{proxy.url}/readyz") as response:
        assert response.status == 200  # the probe writes successfully: storage is back
    async with http.post(chat_url(proxy), json=user_body(f"Hi, I am {PERSON}.")) as response:
        assert response.status == 200


async def test_too_much_text_to_inspect_is_413(make_proxy, upstream, http):
    proxy = await make_proxy(max_inspected_chars=1000)
    async with http.post(chat_url(proxy), json=user_body("word " * 300)) as response:
        assert response.status == 413
        assert_openai_error(await response.json(), "request_too_large")
    assert upstream.fake.received == []


async def test_only_known_sdk_headers_are_forwarded(proxy, upstream, http):
    headers = {"X-Stainless-Lang": "python", "X-Stainless-Customer": EMAIL, "X-User-Email": EMAIL}
    async with http.post(chat_url(proxy), json=user_body("Hello."), headers=headers) as response:
        assert response.status == 200
    seen = {k.lower(): v for k, v in upstream.fake.received[0].headers.items()}
    assert seen.get("x-stainless-lang") == "python"
    assert "x-stainless-customer" not in seen and "x-user-email" not in seen


async def test_detection_off_forwards_text_but_still_applies_the_deny_list(make_proxy, upstream, http):
    from proxy.state import ProxyState

    proxy = await make_proxy(detector_pool=None, detection="off", deny_list=["Project Falcon"])
    assert type(proxy.state.detector).__name__ == "NoDetector" and isinstance(proxy.state, ProxyState)
    body = {"model": "m", "messages": [{"role": "user", "content": "Jane Roe leads Project Falcon."}]}
    async with http.post(f"{proxy.base_url}/chat/completions", json=body) as response:
        assert response.status == 200
    sent = upstream.fake.received[-1].json["messages"][0]["content"]
    assert sent.startswith("Jane Roe leads <SENSITIVE_TERM_")
