"""The fast JSON codec reads and writes exactly what the standard library does, or refuses."""

from __future__ import annotations

import json
import random

import pytest

from redaction.json_codec import dumps, loads
from tests.test_proxy_chat import chat_url, user_body

EXACT = [
    b'{"seed": 123456789012345678901234567890}',  # beyond 64 bits: orjson would read a float
    b"[-9223372036854775809, 18446744073709551615, 9223372036854775807]",
    b'"\\ud800 lone surrogate"',  # legal JSON, not UTF-8
    b'{"a": 1, "a": 2}',  # duplicate keys: the last one wins, as upstream parsers read it
    b'{"x": [1.5, -0.0, 1e308, 5e-324, 0.1, "\\u00e9\\u2028", true, null]}',
    b'\xef\xbb\xbf{"bom": 1}',
]


@pytest.mark.parametrize("raw", EXACT)
def test_reads_and_writes_what_the_standard_library_does(raw: bytes):
    expected = json.loads(raw)
    value = loads(raw)
    assert value == expected and type(value) is type(expected)
    assert json.loads(dumps(value)) == expected
    assert repr(json.loads(dumps(value))) == repr(expected)  # -0.0, big ints and floats exactly


@pytest.mark.parametrize("raw", [b"NaN", b"[Infinity]", b"[-Infinity]", b"[1e400]", b"{", b"\xff", b'{"a" 1}'])
def test_what_is_not_json_is_refused(raw: bytes):
    with pytest.raises(ValueError):
        loads(raw)


def test_output_is_compact_utf8():
    assert dumps({"name": "Zoë", "n": [1, 2]}) == '{"name":"Zoë","n":[1,2]}'.encode()


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**70), rng.randrange(-(10**25), 10**25)])
    if kind == 1:
        return rng.choice([0.5, -0.0, 1e-310, 1.7976931348623157e308, rng.uniform(-1e9, 1e9)])
    if kind == 2:
        return "".join(rng.choice('aé\u2028\ud83d\ude00\\"\n\t\x00\x7f1234567890123456789 ') for _ in range(20))
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return "\ud800" if rng.random() < 0.2 else "plain"
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{rng.randrange(5)}": _random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _standard_dumps(value) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(value).encode()


@pytest.mark.parametrize("seed", range(3))
def test_random_documents_round_trip_like_the_standard_library(seed: int):
    rng = random.Random(seed)
    for _ in range(400):
        value = _random_value(rng)
        for raw in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")):
            try:
                expected = json.loads(raw)
            except ValueError:
                continue
            assert repr(loads(raw)) == repr(expected)
            # what a reader of the output sees is what it saw with the standard library's output
            assert repr(json.loads(dumps(loads(raw)))) == repr(json.loads(_standard_dumps(expected)))


async def test_numbers_reach_the_upstream_unchanged_and_nan_is_refused(proxy, upstream, http):
    body = user_body("Say hello.", seed=123456789012345678901234567890, temperature=0.1)
    async with http.post(chat_url(proxy), json=body) as response:
        assert response.status == 200
    forwarded = upstream.fake.received[-1].json
    assert forwarded["seed"] == 123456789012345678901234567890 and forwarded["temperature"] == 0.1
    sent = len(upstream.fake.received)
    raw = b'{"model": "m", "temperature": NaN, "messages": [{"role": "user", "content": "hi"}]}'
    async with http.post(chat_url(proxy), data=raw, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_json"
    assert len(upstream.fake.received) == sent
