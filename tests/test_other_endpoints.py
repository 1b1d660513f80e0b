"""Embeddings, legacy completions, model listing and operator-allowed paths, via the openai SDK."""

from __future__ import annotations

import json

import openai
import pytest

from tests.test_proxy_chat import assert_nothing_leaked, assert_openai_error

PERSON, EMAIL, CARD = "Jane Roe", "jane.roe@example.com", "4111 1111 1111 1111"
TEXT = f"{PERSON} ({EMAIL}) paid with {CARD}."


def sdk(proxy) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=proxy.base_url, api_key="sk-test", max_retries=0)


async def test_embeddings_input_is_redacted_string_and_list(proxy, upstream):
    async with sdk(proxy) as client:
        single = await client.embeddings.create(model="text-embedding-3-small", input=TEXT)
        several = await client.embeddings.create(model="text-embedding-3-small", input=[TEXT, "Nothing personal."])
    assert len(single.data) == 1 and len(several.data) == 2
    for received in upstream.fake.received:
        assert_nothing_leaked(received.raw, [PERSON, EMAIL, CARD])
    assert json.loads(upstream.fake.received[1].raw)["input"][1] == "Nothing personal."
    [first, _] = await proxy.records()
    assert first.endpoint == "/v1/embeddings" and first.entity_counts["PERSON"] == 1


async def test_embeddings_of_token_ids_are_refused(proxy, upstream, http):
    body = {"model": "text-embedding-3-small", "input": [[1, 2, 3]]}
    async with http.post(f"{proxy.base_url}/embeddings", json=body) as response:
        assert response.status == 400
        assert_openai_error(await response.json(), "content_not_inspectable")
    assert upstream.fake.received == []


@pytest.mark.parametrize("stream", [False, True])
async def test_legacy_completions_are_redacted_and_restored(proxy, upstream, stream):
    upstream.fake.piece_size = 1
    async with sdk(proxy) as client:
        if stream:
            chunks = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt=TEXT, stream=True)
            text = "".join([c.choices[0].text async for c in chunks if c.choices])
        else:
            answer = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt=[TEXT])
            text = answer.choices[0].text
    assert text == TEXT
    assert_nothing_leaked(upstream.fake.received[0].raw, [PERSON, EMAIL, CARD])


async def test_models_pass_through_with_the_clients_key(proxy, upstream):
    async with sdk(proxy) as client:
        models = await client.models.list()
    assert [m.id for m in models.data] == ["fake-model"]
    [received] = upstream.fake.received
    assert received.path == "/v1/models" and received.headers.get("Authorization") == "Bearer sk-test"


async def test_unknown_paths_are_refused_unless_allowed(make_proxy, upstream, http):
    body = {"input": TEXT, "nested": {"note": f"for {PERSON}"}}
    closed = await make_proxy()
    async with http.post(f"{closed.base_url}/moderations", json=body) as response:
        assert response.status == 404
    assert upstream.fake.received == []

    opened = await make_proxy(allowed_paths=["/v1/moderations"])
    async with http.post(f"{opened.base_url}/moderations", json=body) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer == {"echo": body}  # restored on the way back
    assert_nothing_leaked(upstream.fake.received[0].raw, [PERSON, EMAIL, CARD])


@pytest.mark.parametrize("model_id", ["..%2Ffiles%2Ffile-1%2Fcontent", "a%2F..%2F..%2Fadmin", "..", "x..y"])
async def test_model_ids_cannot_reach_other_upstream_paths(make_proxy, upstream, http, model_id):
    proxy = await make_proxy(upstream_api_key="sk-operator")
    async with http.get(f"{proxy.base_url}/models/{model_id}") as response:
        assert response.status in (400, 404)
    assert upstream.fake.received == []


async def test_a_plain_model_id_is_passed_as_one_path_segment(proxy, upstream, http):
    async with http.get(f"{proxy.base_url}/models/gpt-4o-mini") as response:
        assert response.status == 200
    assert [r.path for r in upstream.fake.received] == ["/v1/models/gpt-4o-mini"]
