"""The proxy's JSON reader and writer (orjson where it agrees with the json module) must read and
write every body exactly as the json module does: same values, same escapes, same refusals."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from aiohttp import web

from redaction import jsonio
from tests.conftest import MakeProxy, Upstream
from tests.fake_upstream import chat_completion, chunk, sse
from tests.test_proxy_chat import assert_openai_error, chat_url, chunks_of, user_body

MADE_UP = "mallory.stone@example.net"  # synthetic

STRINGS = ["", "plain", "Jane Roe", "é", "日本語", "🙂", "\u2028", "\x00", "\x1f", "\x7f", '"', "\\", "/", "\ud800"]
NUMBERS = [0, -1, 7, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 10**30, 0.1, -0.0, 1e-300,
           1.7976931348623157e308, 5e-324, 123456789.123456789]  # fmt: skip


def random_document(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 4 else 3)
    if kind == 0:
        return "".join(rng.choice(STRINGS) for _ in range(rng.randint(0, 4)))
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return [random_document(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(STRINGS) + str(i): random_document(rng, depth + 1) for i in range(rng.randint(0, 4))}


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 would hide an integer made a float)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a.hex() == b.hex()
    return a == b


@pytest.mark.parametrize("seed", range(3))
def test_documents_read_and_written_as_the_json_module_does(seed: int):
    rng = random.Random(seed)
    for number in range(300):
        document = random_document(rng)
        if number % 3 == 0:  # past the size up to which orjson reads
            document = {"padding": "x" * 5000, "document": document}
        for text in (json.dumps(document), json.dumps(document, ensure_ascii=False, indent=1)):
            raw = text.encode("utf-8", "surrogatepass")
            try:
                expected = json.loads(raw)
            except UnicodeDecodeError:  # a raw lone surrogate is not UTF-8: both refuse it
                with pytest.raises(UnicodeDecodeError):
                    jsonio.loads(raw)
                continue
            assert same(jsonio.loads(raw), expected), text
            assert same(jsonio.loads(text), json.loads(text)), text
        assert same(json.loads(jsonio.dumps(document)), document)


def test_integers_beyond_64_bits_keep_every_digit():
    """orjson reads them as floats: 123456789012345678901234567890 would reach the upstream as 1.2e29."""
    raw = b'{"seed": 123456789012345678901234567890, "n": -9223372036854775809, "ok": 18446744073709551615}'
    body = jsonio.loads(raw)
    assert body == {"seed": 123456789012345678901234567890, "n": -9223372036854775809, "ok": 18446744073709551615}
    assert json.loads(jsonio.dumps(body)) == body


@pytest.mark.parametrize("raw", [b"NaN", b'{"t": Infinity}', b"[-Infinity]", b'{"t": 1e400}', b"-1E999"])
def test_numbers_that_are_not_json_are_refused(raw: bytes):
    """Python's json accepts them, orjson would write them back as null: neither is what was sent."""
    with pytest.raises(jsonio.NotFiniteNumber):
        jsonio.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [b'{"a": 1,}', b'"\\x41"', b"01", b'{"a": "\x01"}', b"", b"[1] [2]", b'{"a": 1, "a": 2}'],
    ids=["trailing-comma", "bad-escape", "leading-zero", "raw-control", "empty", "two-documents", "duplicate-key"],
)
def test_refusals_and_duplicate_keys_match_the_json_module(raw: bytes):
    try:
        expected = json.loads(raw)
    except ValueError:
        with pytest.raises(json.JSONDecodeError):
            jsonio.loads(raw)
        return
    assert jsonio.loads(raw) == expected == {"a": 2}  # the last of duplicate keys, as the upstream reads it


def test_byte_order_mark_utf16_and_lone_surrogate_escapes_are_read_like_json():
    for raw in (b'\xef\xbb\xbf{"a": "b"}', '{"a": "é"}'.encode("utf-16"), b'{"a": "\\ud800x"}'):
        assert jsonio.loads(raw) == json.loads(raw)


def test_every_code_point_is_escaped_as_the_json_module_escapes_it():
    """The leftover check looks for values in the forwarded body as json writes them."""
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert jsonio.dumps(every) == json.dumps(every, ensure_ascii=False).encode()
    assert jsonio.dumps("a\ud800b") == b'"a\\ud800b"'  # not UTF-8: written as an escape


def test_deep_nesting_is_read_or_refused_like_json():
    deep = b"[" * 5000 + b"]" * 5000
    with pytest.raises(RecursionError):
        jsonio.loads(deep)


async def test_a_request_with_a_long_integer_reaches_the_upstream_exactly(
    make_proxy: MakeProxy, upstream: Upstream, http
):
    proxy = await make_proxy(detector_pool=None, detection="off")
    raw = b'{"model": "m", "seed": 123456789012345678901234567890, "messages": [{"role": "user", "content": "hi"}]}'
    async with http.post(chat_url(proxy), data=raw, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 200
    assert upstream.fake.received[0].json["seed"] == 123456789012345678901234567890


async def test_an_integer_of_5000_digits_is_400_not_500(make_proxy: MakeProxy, upstream: Upstream, http):
    proxy = await make_proxy(detector_pool=None, detection="off")
    raw = b'{"model": "m", "seed": ' + b"7" * 5000 + b', "messages": [{"role": "user", "content": "hi"}]}'
    async with http.post(chat_url(proxy), data=raw, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400
        assert_openai_error(await response.json(), "invalid_json")
    assert upstream.fake.received == []


async def test_nan_in_a_request_is_400_and_nothing_is_forwarded(make_proxy: MakeProxy, upstream: Upstream, http):
    proxy = await make_proxy(detector_pool=None, detection="off")
    raw = b'{"model": "m", "temperature": NaN, "messages": [{"role": "user", "content": "hi"}]}'
    async with http.post(chat_url(proxy), data=raw, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400
        assert_openai_error(await response.json(), "invalid_json")
    assert upstream.fake.received == []


def test_an_answer_s_nan_and_infinities_are_read_and_written_back_as_they_came():
    """Python servers write them (json's default); orjson would write them back as null."""
    answer = jsonio.loads(b'{"a": NaN, "b": -Infinity, "c": 1e400, "d": [0.5, Infinity]}', allow_nan=True)
    assert jsonio.dumps(answer) == b'{"a":NaN,"b":-Infinity,"c":Infinity,"d":[0.5,Infinity]}'


async def test_an_answer_with_infinite_logprobs_is_still_guarded_as_json(
    make_proxy: MakeProxy, upstream: Upstream, http
):
    """Read as plain text, such an answer kept its token details (the made-up address, token by
    token), and a stream was guarded event by event (half an address went out before the rest)."""
    proxy = await make_proxy(detector_pool=None, detection="off")

    async def whole(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        answer = chat_completion(f"Write to {MADE_UP}.")
        tokens = [{"token": "mallory.stone@exam", "logprob": "-INF"}, {"token": "ple.net", "logprob": -0.5}]
        answer["choices"][0]["logprobs"] = {"content": tokens}
        return web.Response(body=json.dumps(answer).replace('"-INF"', "-Infinity"), content_type="application/json")

    upstream.fake.behaviour = whole
    async with http.post(chat_url(proxy), json=user_body("Hello.")) as response:
        assert response.status == 200
        raw = await response.read()
    assert b"mallory" not in raw and json.loads(raw)["choices"][0]["logprobs"] is None

    async def stream(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in ("Write to mallory.st", "one@example.net now."):
            event = chunk({"content": part})
            event["choices"][0]["logprobs"] = {"content": [{"token": part, "logprob": "-INF"}]}
            await response.write(sse(json.dumps(event).replace('"-INF"', "-Infinity")))
        await response.write(sse("[DONE]"))
        return response

    upstream.fake.behaviour = stream
    async with http.post(chat_url(proxy), json=user_body("Hello.", stream=True)) as response:
        raw = await response.read()
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks_of(raw) if c.get("choices"))
    assert text == "Write to <EMAIL_ADDRESS_REDACTED> now." and b"mallory" not in raw
