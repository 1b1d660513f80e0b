"""End-to-end tests of POST /v1/chat/completions through real HTTP.

Client (aiohttp) -> proxy (real Presidio detector, SQLite log) -> FakeUpstream on loopback.
All personal data below is synthetic: example.com addresses, 555-01xx phone numbers, test
card and IBAN numbers, the SSA's published sample SSN, and placeholder names (Jane Roe, John Doe).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from config import Settings
from proxy.state import detector_config
from redaction import PLACEHOLDER_RE, DetectorPool, DetectorUnavailable
from tests.conftest import free_port
from tests.fake_upstream import chat_completion, chunk, sse

PERSON = "Jane Roe"
OTHER_PERSON = "John Doe"
EMAIL = "jane.roe@example.com"
PHONE = "212-555-0147"
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
SSN = "219-09-9999"  # the SSA's advertising sample; Presidio's US_SSN recognizer accepts it

ALL_VALUES = (PERSON, EMAIL, PHONE, CARD, IBAN, SSN)
# The same values as they are often written without separators.
COMPACT_FORMS = ("2125550147", "4111111111111111", "DE89370400440532013000", "219099999")

GUARD = 15  # seconds: a failure guard so a broken proxy fails the test instead of hanging it


# --------------------------------------------------------------------------- helpers


def chat_url(proxy: Any) -> str:
    return f"{proxy.base_url}/chat/completions"


def user_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def upstream_bytes(received: Any) -> bytes:
    """Everything the upstream got for one request: header lines and raw body."""
    head = "".join(f"{name}: {value}\r\n" for name, value in received.headers.items())
    return head.encode() + b"\r\n" + received.raw


def assert_nothing_leaked(blob: bytes, values: Sequence[str]) -> None:
    for value in values:
        escaped = json.dumps(value)[1:-1]
        for form in {value, escaped, value.lower()}:
            assert form.encode() not in blob, f"{value!r} reached the upstream"


def placeholders_in(text: str) -> list[str]:
    """Distinct placeholders of ``text`` in order of first appearance."""
    seen: list[str] = []
    for match in PLACEHOLDER_RE.finditer(text):
        if match.group(0) not in seen:
            seen.append(match.group(0))
    return seen


def assert_openai_error(payload: Any, code: str) -> None:
    assert isinstance(payload, dict) and set(payload) == {"error"}, payload
    error = payload["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]


def sse_data(raw: bytes) -> list[str]:
    """The data of each event of a complete SSE body; every line must be a ``data:`` line."""
    text = raw.decode()
    assert text.endswith("\n\n"), text[-80:]
    result = []
    for event in text[:-2].split("\n\n"):
        lines = event.split("\n")
        assert all(line.startswith("data: ") for line in lines), event
        result.append("\n".join(line.removeprefix("data: ") for line in lines))
    return result


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    """Checks the stream shape (JSON chunks, exactly one final [DONE]) and returns the chunks."""
    data = sse_data(raw)
    assert data.count("[DONE]") == 1, data[-3:]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    for item in chunks:
        assert item["object"] == "chat.completion.chunk", item
    return chunks


def streamed_content(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        choice.get("delta", {}).get("content") or "" for item in chunks for choice in item.get("choices", [])
    )


def streamed_tool_calls(chunks: list[dict[str, Any]]) -> dict[int, dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for item in chunks:
        for choice in item.get("choices", []):
            for call in choice.get("delta", {}).get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.get("id") or ""
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
    return calls


async def next_event(stream: aiohttp.StreamReader) -> str:
    """The data of the next SSE event, read incrementally."""
    lines: list[str] = []
    while True:
        line = await stream.readline()
        assert line, "stream ended early"
        text = line.decode().rstrip("\r\n")
        if text == "":
            if lines:
                return "\n".join(lines)
            continue
        assert text.startswith("data: "), text
        lines.append(text.removeprefix("data: "))


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return content


async def start_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


async def chunked(data: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# --------------------------------------------------------------------------- 1. every field


def customer_conversation() -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "user": EMAIL,
        "metadata": {"customer_phone": PHONE, "customer_name": PERSON},
        "messages": [
            {"role": "system", "content": f"You are a support agent. The customer is {PERSON}, e-mail {EMAIL}."},
            {
                "role": "user",
                "name": PERSON,
                "content": [
                    {"type": "text", "text": f"Hi, I am {PERSON}. My card number is {CARD}."},
                    {"type": "text", "text": f"Please call me on {PHONE}."},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "verify_account",
                            "arguments": json.dumps({"iban": IBAN, "holder": PERSON}),
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f'Customer record: {{"ssn": "{SSN}", "ok": true}}'},
            {"role": "user", "content": "Please repeat everything you know about me."},
        ],
    }


def visible_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in ("messages", "user", "metadata")}


@pytest.mark.parametrize("stream", [False, True])
async def test_no_value_reaches_upstream_from_any_field_and_all_come_back(make_proxy, upstream, http, stream):
    proxy = await make_proxy()
    upstream.fake.piece_size = 7

    async def echo_request(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        # the model repeats the whole (sanitised) conversation it saw: every placeholder comes back
        text = json.dumps(visible_fields(body))
        if body.get("stream"):
            return await upstream.fake.stream_text(request, text)
        return web.json_response(chat_completion(text))

    upstream.fake.behaviour = echo_request
    body = customer_conversation()
    if stream:
        body["stream"] = True
    headers = {"X-Customer-Email": EMAIL, "X-Customer-Phone": PHONE, "Authorization": "Bearer sk-test"}
    async with http.post(chat_url(proxy), json=body, headers=headers) as response:
        assert response.status == 200, await response.text()
        raw = await response.read()

    [received] = upstream.fake.received
    assert_nothing_leaked(upstream_bytes(received), [*ALL_VALUES, *COMPACT_FORMS])
    sent = received.json
    # the structure is intact: roles, ids, the tool's name, the parts' types
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert sent["messages"][2]["tool_calls"][0]["function"]["name"] == "verify_account"
    assert sent["messages"][3]["tool_call_id"] == "call_1"
    assert isinstance(json.loads(sent["messages"][2]["tool_calls"][0]["function"]["arguments"]), dict)
    kinds = {p[1:-1].rsplit("_", 1)[0] for p in placeholders_in(received.raw.decode())}
    assert {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"} <= kinds

    answer = streamed_content(chunks_of(raw)) if stream else json.loads(raw)["choices"][0]["message"]["content"]
    assert json.loads(answer) == visible_fields(customer_conversation())


# --------------------------------------------------------------------------- 2. placeholders


async def test_placeholders_are_stable_distinct_and_user_typed_ones_stay_literal(proxy, upstream, http):
    last = f"My template says <PERSON_1>. Tell {OTHER_PERSON} that {PERSON} called."
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": f"{PERSON} asked about her order."},
            {"role": "assistant", "content": f"I will check the order for {PERSON}."},
            {"role": "user", "content": last},
        ],
    }
    async with http.post(chat_url(proxy), json=body) as response:
        assert response.status == 200
        answer = await response.json()

    sent = [m["content"] for m in upstream.fake.received[0].json["messages"]]
    [jane] = placeholders_in(sent[0])
    assert placeholders_in(sent[1]) == [jane]
    assert jane != "<PERSON_1>", "a placeholder the user typed was handed out to a real value"
    assert sent[2].count("<PERSON_1>") == 1  # the literal one, untouched
    others = [p for p in placeholders_in(sent[2]) if p not in ("<PERSON_1>", jane)]
    assert len(others) == 1 and others[0].startswith("<PERSON_")
    assert jane in sent[2]
    # the echo restores the real names, and the literal placeholder stays literal
    assert answer["choices"][0]["message"]["content"] == last


# --------------------------------------------------------------------------- 3. streaming


async def test_stream_restores_placeholders_split_one_char_per_event(proxy, upstream, http):
    text = f"Please ask {PERSON} to write to {EMAIL} today."
    body = user_body(text, stream=True, stream_options={"include_usage": True})
    async with http.post(chat_url(proxy), json=body) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        raw = await response.read()

    assert upstream.fake.piece_size == 1
    assert_nothing_leaked(upstream.fake.received[0].raw, [PERSON, EMAIL])
    chunks = chunks_of(raw)
    assert streamed_content(chunks) == text
    for item in chunks:  # no fragment of a placeholder ever reaches the client
        for choice in item["choices"]:
            assert "<" not in (choice["delta"].get("content") or "")
    usage = [item for item in chunks if item.get("usage")]
    assert len(usage) == 1 and usage[0]["choices"] == []
    assert usage[0]["usage"] == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]].count("stop") == 1


async def test_stream_first_bytes_arrive_before_upstream_finishes(proxy, upstream, http):
    gate = asyncio.Event()

    async def slow_stream(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        [person] = placeholders_in(last_user_text(body))
        response = await start_stream(request)
        await response.write(sse(chunk({"role": "assistant", "content": f"Hello {person}"})))
        await gate.wait()
        await response.write(sse(chunk({"content": ", goodbye."})))
        await response.write(sse(chunk({}, "stop")))
        await response.write(sse("[DONE]"))
        await response.write_eof()
        return response

    upstream.fake.behaviour = slow_stream
    async with http.post(chat_url(proxy), json=user_body(f"Please send a note to {PERSON}.", stream=True)) as response:
        assert response.status == 200
        first = json.loads(await asyncio.wait_for(next_event(response.content), GUARD))
        assert not gate.is_set()
        assert first["choices"][0]["delta"]["content"] == f"Hello {PERSON}"
        gate.set()
        rest = await response.read()
    chunks = [first, *chunks_of(rest)]
    assert streamed_content(chunks) == f"Hello {PERSON}, goodbye."


# --------------------------------------------------------------------------- 4. tool calls

QUOTED_TERM = 'Project "Nightjar"'
BACKSLASH_TERM = "corp\\jroe"
TICKET_PROMPT = f"Open a ticket for {PERSON} ({EMAIL}) about {QUOTED_TERM}, login {BACKSLASH_TERM}."


def ticket_arguments(person: str, email: str, project: str, login: str) -> list[dict[str, Any]]:
    """The arguments of the two tool calls the model makes (placeholders or real values)."""
    return [
        {"customer": person, "email": email, "project": project, "login": login, "priority": 2},
        {"to": [email], "subject": f"Your ticket about {project}", "body": f"Dear {person}, see {login}."},
    ]


EXPECTED_ARGUMENTS = ticket_arguments(PERSON, EMAIL, QUOTED_TERM, BACKSLASH_TERM)
TOOL_NAMES = ["open_ticket", "send_email"]


def ticket_placeholders(body: dict[str, Any]) -> list[str]:
    found = placeholders_in(last_user_text(body))
    assert len(found) == 4, found  # person, e-mail, the two deny-list terms, in prompt order
    return found


async def test_tool_call_arguments_are_restored_as_valid_json(make_proxy, upstream, http):
    proxy = await make_proxy(deny_list=[QUOTED_TERM, BACKSLASH_TERM])

    async def call_tools(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        args = ticket_arguments(*ticket_placeholders(body))
        calls = [
            {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": json.dumps(arg)}}
            for n, (name, arg) in enumerate(zip(TOOL_NAMES, args, strict=True))
        ]
        return web.json_response(chat_completion(None, tool_calls=calls))

    upstream.fake.behaviour = call_tools
    async with http.post(chat_url(proxy), json=user_body(TICKET_PROMPT)) as response:
        assert response.status == 200
        answer = await response.json()

    assert_nothing_leaked(upstream.fake.received[0].raw, [PERSON, EMAIL, QUOTED_TERM, BACKSLASH_TERM])
    calls = answer["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == TOOL_NAMES
    assert [c["id"] for c in calls] == ["call_0", "call_1"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == EXPECTED_ARGUMENTS
    assert answer["choices"][0]["finish_reason"] == "tool_calls"


async def test_streamed_tool_calls_split_across_chunks_are_restored(make_proxy, upstream, http):
    proxy = await make_proxy(deny_list=[QUOTED_TERM, BACKSLASH_TERM])

    async def stream_tools(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        args = ticket_arguments(*ticket_placeholders(body))
        response = await start_stream(request)
        await response.write(sse(chunk({"role": "assistant", "content": None})))
        for index, (name, arg) in enumerate(zip(TOOL_NAMES, args, strict=True)):
            head = {"index": index, "id": f"call_{index}", "type": "function", "function": {"name": name}}
            head["function"]["arguments"] = ""
            await response.write(sse(chunk({"tool_calls": [head]})))
            text = json.dumps(arg)
            for start in range(0, len(text), 3):  # cuts every placeholder into pieces
                piece = {"index": index, "function": {"arguments": text[start : start + 3]}}
                await response.write(sse(chunk({"tool_calls": [piece]})))
        await response.write(sse(chunk({}, "tool_calls")))
        await response.write(sse("[DONE]"))
        await response.write_eof()
        return response

    upstream.fake.behaviour = stream_tools
    async with http.post(chat_url(proxy), json=user_body(TICKET_PROMPT, stream=True)) as response:
        assert response.status == 200
        raw = await response.read()

    calls = streamed_tool_calls(chunks_of(raw))
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == TOOL_NAMES
    assert [calls[i]["id"] for i in (0, 1)] == ["call_0", "call_1"]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == EXPECTED_ARGUMENTS


# --------------------------------------------------------------------------- 5. bad inputs


async def test_malformed_json_is_400_invalid_json(proxy, upstream, http):
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "Jane Roe"'
    headers = {"Content-Type": "application/json"}
    async with http.post(chat_url(proxy), data=raw, headers=headers) as response:
        assert response.status == 400
        payload = await response.json()
    assert_openai_error(payload, "invalid_json")
    assert PERSON not in json.dumps(payload)
    assert upstream.fake.received == []


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": {"role": "user", "content": "hi"}},
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"},
        [{"model": "m", "messages": [{"role": "user", "content": "hi"}]}],
        {"model": "m", "messages": []},
        {"messages": [{"role": "user", "content": "hi"}]},
        {"model": "m", "messages": [{"role": "user", "content": 42}]},
        {"model": "m", "messages": ["hi"]},
    ],
    ids=["messages-object", "stream-string", "body-list", "messages-empty", "no-model", "content-int", "message-str"],
)
async def test_wrong_shapes_are_400(proxy, upstream, http, body):
    async with http.post(chat_url(proxy), json=body) as response:
        assert response.status == 400
        payload = await response.json()
    assert_openai_error(payload, "invalid_request")
    assert upstream.fake.received == []


@pytest.mark.parametrize("send_chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_limit_is_413(make_proxy, upstream, http, send_chunked):
    proxy = await make_proxy(max_body_bytes=1000)
    raw = json.dumps(user_body("Tell me a story. " * 120)).encode()
    assert len(raw) > 1000
    data = chunked(raw) if send_chunked else raw
    async with http.post(chat_url(proxy), data=data, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 413
        payload = await response.json()
    assert_openai_error(payload, "request_too_large")
    assert upstream.fake.received == []
    # a body under the limit still passes
    async with http.post(chat_url(proxy), json=user_body("Hello there.")) as response:
        assert response.status == 200


async def test_unreachable_upstream_is_502(make_proxy, upstream, http):
    proxy = await make_proxy(upstream=f"http://127.0.0.1:{free_port()}/v1")
    async with http.post(chat_url(proxy), json=user_body(f"Hi, I am {PERSON}.")) as response:
        assert response.status == 502
        payload = await response.json()
    assert_openai_error(payload, "upstream_unreachable")
    assert PERSON not in json.dumps(payload)
    assert upstream.fake.received == []


async def test_upstream_timeout_is_504(make_proxy, upstream, http):
    proxy = await make_proxy(upstream_read_timeout=0.5)
    upstream.fake.release = asyncio.Event()  # the upstream never answers (set at teardown)
    async with http.post(chat_url(proxy), json=user_body(f"Hi, I am {PERSON}.")) as response:
        assert response.status == 504
        payload = await response.json()
    assert_openai_error(payload, "upstream_timeout")
    [received] = upstream.fake.received
    assert_nothing_leaked(received.raw, [PERSON])
    [record] = await proxy.records()
    assert (record.status, record.outcome) == (504, "upstream_timeout")


@pytest.mark.parametrize("status", [429, 400])
async def test_upstream_errors_pass_through_with_their_status(proxy, upstream, http, status):
    error = {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limited"}}

    async def refuse(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(error, status=status, headers={"Retry-After": "7"})

    upstream.fake.behaviour = refuse
    async with http.post(chat_url(proxy), json=user_body(f"Hi, I am {PERSON}.")) as response:
        assert response.status == status
        assert response.headers.get("Retry-After") == "7"
        assert await response.json() == error
    [record] = await proxy.records()
    assert (record.status, record.outcome) == (status, "upstream_error")


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/files"), ("POST", "/v1/audio/speech"), ("GET", "/")])
async def test_unknown_path_is_404_json(proxy, upstream, http, method, path):
    async with http.request(method, f"{proxy.url}{path}", json=user_body("hi")) as response:
        assert response.status == 404
        assert response.content_type == "application/json"
        payload = await response.json()
    assert set(payload) == {"error"} and payload["error"]["message"]
    assert upstream.fake.received == []


def image_request() -> dict[str, Any]:
    parts = [
        {"type": "text", "text": f"This photo was sent by {PERSON}. What is in it?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
    ]
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": parts}]}


async def test_image_part_is_refused_by_default_and_nothing_forwarded(proxy, upstream, http):
    async with http.post(chat_url(proxy), json=image_request()) as response:
        assert response.status == 400
        payload = await response.json()
    assert_openai_error(payload, "content_not_inspectable")
    assert upstream.fake.received == []


async def test_image_part_is_forwarded_when_configured(make_proxy, upstream, http):
    proxy = await make_proxy(non_text_content="forward")
    async with http.post(chat_url(proxy), json=image_request()) as response:
        assert response.status == 200
        answer = await response.json()
    [received] = upstream.fake.received
    assert_nothing_leaked(received.raw, [PERSON])
    parts = received.json["messages"][0]["content"]
    assert parts[1] == image_request()["messages"][0]["content"][1]
    assert answer["choices"][0]["message"]["content"] == image_request()["messages"][0]["content"][0]["text"]


# --------------------------------------------------------------------------- 6. fail closed


class BrokenDetector:
    """Stands in for a detector pool whose analysis fails (only used for fail-closed tests)."""

    ready = True

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def analyze(self, texts: Sequence[str]) -> list[list[Any]]:
        raise self.error


@pytest.mark.parametrize(
    "make_detector",
    [
        lambda: BrokenDetector(DetectorUnavailable("detector worker died")),
        lambda: BrokenDetector(RuntimeError("analysis crashed")),
        lambda: DetectorPool(detector_config(Settings()), workers=1),  # never started: not ready
    ],
    ids=["raises-unavailable", "raises-other", "not-ready"],
)
async def test_broken_detector_fails_closed_with_503(make_proxy, upstream, http, make_detector):
    proxy = await make_proxy(detector_pool=make_detector())
    body = user_body(f"Hi, I am {PERSON}, card {CARD}.")
    async with http.post(chat_url(proxy), json=body) as response:
        status = response.status
        payload = await response.json()
    assert upstream.fake.received == []
    assert status == 503, payload
    assert_openai_error(payload, "detector_unavailable")
    assert PERSON not in json.dumps(payload) and CARD not in json.dumps(payload)


async def test_detection_timeout_is_503_and_nothing_forwarded(make_proxy, upstream, http, detector, monkeypatch):
    proxy = await make_proxy()
    monkeypatch.setattr(detector, "timeout", 0.001)
    text = f"{PERSON} wrote to {EMAIL} about the parcel. " * 80
    async with http.post(chat_url(proxy), json=user_body(text)) as response:
        assert response.status == 503
        payload = await response.json()
    assert_openai_error(payload, "detection_timeout")
    assert upstream.fake.received == []

    # the worker still busy with that text is replaced; meanwhile requests fail closed
    restarts = detector.restarts
    monkeypatch.setattr(detector, "timeout", 60)
    async with http.get(f"{proxy.url}/readyz") as response:
        assert response.status == 503
    async with http.post(chat_url(proxy), json=user_body(f"Hi, I am {PERSON}.")) as response:
        assert response.status == 503
    await detector.wait_ready()
    assert detector.restarts == restarts and detector.ready
    async with http.post(chat_url(proxy), json=user_body(f"Hi, I am {PERSON}.")) as response:
        assert response.status == 200
    assert PERSON.encode() not in upstream.fake.received[-1].raw


# --------------------------------------------------------------------------- 7. health while busy


async def test_healthz_answers_while_a_long_prompt_is_analysed(proxy, upstream, http, detector, monkeypatch):
    entered, finished = asyncio.Event(), asyncio.Event()
    analyze = detector.analyze

    async def observed_analyze(texts: Sequence[str]) -> Any:  # the real analysis, observed
        entered.set()
        try:
            return await analyze(texts)
        finally:
            finished.set()

    monkeypatch.setattr(detector, "analyze", observed_analyze)
    names = [PERSON, OTHER_PERSON]
    text = " ".join(
        f"Ticket {i}: {names[i % 2]} asked about the delivery of order {i} and wants a call back tomorrow."
        for i in range(560)
    )
    assert len(text) > 48_000

    async def long_request() -> tuple[int, dict[str, Any]]:
        async with http.post(chat_url(proxy), json=user_body(text)) as response:
            return response.status, await response.json()

    task = asyncio.create_task(long_request())
    try:
        await asyncio.wait_for(entered.wait(), GUARD)
        async with http.get(f"{proxy.url}/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok"}
        assert not finished.is_set(), "healthz waited for the analysis"
        assert not task.done()
        assert upstream.fake.received == []
        status, answer = await asyncio.wait_for(task, 60)
    finally:
        task.cancel()
    assert status == 200
    assert_nothing_leaked(upstream.fake.received[0].raw, names)
    assert answer["choices"][0]["message"]["content"] == text


# --------------------------------------------------------------------------- 8. client hangs up


async def test_client_hanging_up_mid_stream_cancels_upstream_and_is_logged(proxy, upstream, http, monkeypatch):
    never = asyncio.Event()

    async def endless(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        [person] = placeholders_in(last_user_text(body))
        response = await start_stream(request)
        await response.write(sse(chunk({"role": "assistant", "content": f"Dear {person},"})))
        await never.wait()
        return response

    upstream.fake.behaviour = endless
    recorded = asyncio.Event()
    record = proxy.state.record

    def observed_record(exchange: Any) -> None:
        record(exchange)
        recorded.set()

    monkeypatch.setattr(proxy.state, "record", observed_record)
    response = await http.post(chat_url(proxy), json=user_body(f"Write to {PERSON}.", stream=True))
    assert response.status == 200
    first = json.loads(await asyncio.wait_for(next_event(response.content), GUARD))
    assert first["choices"][0]["delta"]["content"] == f"Dear {PERSON},"
    response.close()  # hang up

    await asyncio.wait_for(upstream.fake.cancelled.wait(), GUARD)
    await asyncio.wait_for(recorded.wait(), GUARD)
    [logged] = await proxy.records()
    assert logged.outcome == "client_disconnected"
    assert logged.stream is True
    assert logged.response is not None and f"Dear {PERSON},".encode() in logged.response


# --------------------------------------------------------------------------- 9. headers and auth

HOP_BY_HOP = {
    "Keep-Alive": "timeout=5",
    "TE": "trailers",
    "Trailer": "X-Checksum",
    "Proxy-Authorization": "Basic dXNlcjpwYXNz",
    "Proxy-Connection": "keep-alive",
}


async def test_upstream_headers_are_filtered_and_body_has_content_length(proxy, upstream, http):
    headers = {
        "Authorization": "Bearer sk-client-123",
        "Content-Type": "application/json",
        "X-Customer-Email": EMAIL,
        "OpenAI-Organization": "org-test",
        "X-Stainless-Lang": "python",
        **HOP_BY_HOP,
    }
    raw = json.dumps(user_body("Hello there.")).encode()
    async with http.post(chat_url(proxy), data=chunked(raw, 10), headers=headers) as response:
        assert response.status == 200

    [received] = upstream.fake.received
    seen = {name.lower(): value for name, value in received.headers.items()}
    assert seen["authorization"] == "Bearer sk-client-123"
    assert seen["openai-organization"] == "org-test"
    assert seen["x-stainless-lang"] == "python"
    assert "x-customer-email" not in seen
    assert EMAIL.encode() not in upstream_bytes(received)
    for name in HOP_BY_HOP:
        assert name.lower() not in seen, name
    assert "transfer-encoding" not in seen
    assert seen["content-length"] == str(len(received.raw))


async def test_configured_upstream_key_replaces_the_clients(make_proxy, upstream, http):
    proxy = await make_proxy(upstream_api_key="sk-config")
    headers = {"Authorization": "Bearer sk-client-123"}
    async with http.post(chat_url(proxy), json=user_body("Hello there."), headers=headers) as response:
        assert response.status == 200
    [received] = upstream.fake.received
    assert {k.lower(): v for k, v in received.headers.items()}["authorization"] == "Bearer sk-config"
    assert b"sk-client-123" not in upstream_bytes(received)


async def test_client_api_keys_are_enforced(make_proxy, upstream, http):
    proxy = await make_proxy(client_api_keys={"team-a": "proxy-key"}, upstream_api_key="sk-config")
    body = user_body("Hello there.")
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic proxy-key"}):
        async with http.post(chat_url(proxy), json=body, headers=headers) as response:
            assert response.status == 401, headers
            assert_openai_error(await response.json(), "invalid_api_key")
    assert upstream.fake.received == []

    async with http.post(chat_url(proxy), json=body, headers={"Authorization": "Bearer proxy-key"}) as response:
        assert response.status == 200
    [received] = upstream.fake.received
    assert b"proxy-key" not in upstream_bytes(received)
    assert {k.lower(): v for k, v in received.headers.items()}["authorization"] == "Bearer sk-config"
    records = await proxy.records()
    assert [r.client_id for r in records if r.status == 200] == ["team-a"]
    assert all(r.client_id != "team-a" for r in records if r.status == 401)


async def test_proxy_key_is_never_forwarded_upstream(make_proxy, upstream, http):
    """With proxy keys and no upstream key, the client's Authorization (the proxy key) stays here."""
    proxy = await make_proxy(client_api_keys={"team-a": "proxy-key"})
    async with http.post(chat_url(proxy), json=user_body("Hello."), headers={"Authorization": "Bearer proxy-key"}) as r:
        assert r.status == 200
    [received] = upstream.fake.received
    assert "authorization" not in {k.lower() for k in received.headers}
    assert b"proxy-key" not in upstream_bytes(received)


# --------------------------------------------------------------------------- 10. log opt-out

NO_LOG = {"X-Privacy-Proxy-No-Log": "1"}


async def test_log_opt_out_header_is_ignored_by_default(proxy, upstream, http):
    async with http.post(chat_url(proxy), json=user_body(f"Hi, I am {PERSON}."), headers=NO_LOG) as response:
        assert response.status == 200
    [record] = await proxy.records()
    assert record.original_request is not None and PERSON.encode() in record.original_request
    assert "x-privacy-proxy-no-log" not in {k.lower() for k in upstream.fake.received[0].headers}


async def test_log_opt_out_header_is_honoured_when_allowed(make_proxy, upstream, http):
    proxy = await make_proxy(allow_log_opt_out=True)
    async with http.post(chat_url(proxy), json=user_body(f"Hi, I am {PERSON}."), headers=NO_LOG) as response:
        assert response.status == 200
        assert (await response.json())["choices"][0]["message"]["content"] == f"Hi, I am {PERSON}."
    async with http.post(chat_url(proxy), json=user_body("Second request, logged.")) as response:
        assert response.status == 200
    [record] = await proxy.records()
    assert record.original_request is not None
    assert b"Second request" in record.original_request
    assert PERSON.encode() not in record.original_request
    assert len(upstream.fake.received) == 2


async def test_unknown_fields_keyed_by_personal_data_do_not_carry_it_out(proxy, upstream, http):
    body = user_body("Hello.", custom={"contacts": {EMAIL: {"tel": PHONE}}, PERSON: 1})
    async with http.post(chat_url(proxy), json=body) as response:
        assert response.status == 200, await response.text()
    [received] = upstream.fake.received
    assert_nothing_leaked(received.raw, [PERSON, EMAIL, PHONE])
    [contact] = received.json["custom"]["contacts"]
    assert placeholders_in(contact) == [contact]  # the key became a placeholder, the shape is kept


async def test_forwarded_headers_do_not_carry_personal_data_out(proxy, upstream, http):
    """Allow-listed headers go upstream: values of the body are replaced there too, and
    addresses and numbers found by pattern; ordinary SDK headers pass as they are."""
    headers = {
        "Idempotency-Key": EMAIL,
        "User-Agent": f"support-bot for {PERSON}",
        "OpenAI-Organization": f"tel {PHONE}",
        "X-Stainless-Lang": "python",
    }
    async with http.post(chat_url(proxy), json=user_body(f"I am {PERSON}."), headers=headers) as response:
        assert response.status == 200, await response.text()
    [received] = upstream.fake.received
    assert_nothing_leaked(upstream_bytes(received), [PERSON, EMAIL, PHONE])
    sent = {k.lower(): v for k, v in received.headers.items()}
    assert placeholders_in(sent["idempotency-key"]) == [sent["idempotency-key"]]
    assert sent["user-agent"].startswith("support-bot for <PERSON_")
    assert sent["x-stainless-lang"] == "python"


async def test_an_answer_that_is_not_json_is_a_broken_upstream(proxy, upstream, http):
    """A 200 the SDK cannot read is no success: 502, in the SDK's error shape."""

    async def html(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    upstream.fake.behaviour = html
    async with http.post(chat_url(proxy), json=user_body("Hello.")) as response:
        assert response.status == 502
        assert_openai_error(await response.json(), "upstream_bad_response")


async def test_a_stream_event_that_is_not_json_ends_the_stream_with_an_error(proxy, upstream, http):
    async def broken(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(chunk({"content": "Hello "})))
        await response.write(b"data: {not json\n\n")
        await response.write(sse(chunk({"content": "never sent"})))
        await response.write(sse("[DONE]"))
        return response

    upstream.fake.behaviour = broken
    async with http.post(chat_url(proxy), json=user_body("Hello.", stream=True)) as response:
        assert response.status == 200
        data = sse_data(await response.read())
    assert json.loads(data[0])["choices"][0]["delta"]["content"] == "Hello "
    assert_openai_error(json.loads(data[-1]), "upstream_bad_response")
    assert not any("never sent" in item or "{not json" in item for item in data)
