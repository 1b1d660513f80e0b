"""Placeholders stable across a client's requests, scoped per client, forgotten after a while."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from redaction import PlaceholderMap, PlaceholderVault
from tests.fake_upstream import chat_completion, responses_message, responses_object
from tests.test_proxy_chat import chat_url, user_body

PERSON, OTHER = "Jane Roe", "John Doe"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_clients_values_keep_their_placeholders_across_exchanges():
    vault = PlaceholderVault(ttl=60, max_entries=100)
    first = PlaceholderMap(store=vault.store_for("team-a"))
    assert first.placeholder_for(PERSON, "PERSON") == "<PERSON_1>"
    second = PlaceholderMap(store=vault.store_for("team-a"))
    assert second.placeholder_for(OTHER, "PERSON") == "<PERSON_2>"
    assert second.original("<PERSON_1>") is None  # not part of this exchange: never restored
    assert second.placeholder_for(PERSON, "PERSON") == "<PERSON_1>"  # same value, same placeholder
    assert second.original("<PERSON_1>") == PERSON


def test_an_answer_continuing_an_earlier_response_restores_its_placeholders():
    vault = PlaceholderVault(ttl=60, max_entries=100)
    first = PlaceholderMap(store=vault.store_for("team-a"))
    first.placeholder_for(PERSON, "PERSON")
    first.note_response_id("resp_1")
    first.remember()
    follow_up = PlaceholderMap(store=vault.store_for("team-a"), continues="resp_1")
    assert follow_up.original("<PERSON_1>") == PERSON
    assert PlaceholderMap(store=vault.store_for("team-a"), continues="resp_2").original("<PERSON_1>") is None
    assert PlaceholderMap(store=vault.store_for("team-b"), continues="resp_1").original("<PERSON_1>") is None


def test_an_exchange_keeps_its_entries_when_the_store_forgets_them():
    vault = PlaceholderVault(ttl=60, max_entries=100)
    store = vault.store_for("t")
    mapping = PlaceholderMap(store=store)
    mapping.placeholder_for(PERSON, "PERSON")
    store.expire(unused_since=float("inf"), max_entries=0)  # everything forgotten mid-flight
    assert len(store) == 0
    assert mapping.original("<PERSON_1>") == PERSON and mapping.entity_counts() == {"PERSON": 1}


def test_reserved_placeholders_are_neither_restored_nor_reused_in_that_exchange():
    vault = PlaceholderVault(ttl=60, max_entries=100)
    PlaceholderMap(store=vault.store_for("t")).placeholder_for(PERSON, "PERSON")
    typed = PlaceholderMap(reserved={"<PERSON_1>"}, store=vault.store_for("t"))
    alias = typed.placeholder_for(PERSON, "PERSON")
    assert alias != "<PERSON_1>" and typed.original(alias) == PERSON
    assert typed.original("<PERSON_1>") is None  # the user typed it: it stays literal
    later = PlaceholderMap(store=vault.store_for("t"))
    assert later.placeholder_for(PERSON, "PERSON") == "<PERSON_1>" and later.original("<PERSON_1>") == PERSON


def test_unused_entries_expire_and_the_store_is_bounded():
    clock = Clock()
    vault = PlaceholderVault(ttl=60, max_entries=2, clock=clock)
    mapping = PlaceholderMap(store=vault.store_for("t"))
    for name in ("Ann Lee", "Bob Ray", "Cat Fox"):
        clock.now += 1
        mapping.placeholder_for(name, "PERSON")
    store = vault.store_for("t")  # over the bound: the least recently used is forgotten
    assert sorted(store.values()) == ["Bob Ray", "Cat Fox"]
    clock.now += 61
    vault.sweep()
    assert len(vault) == 0


async def test_placeholders_of_other_requests_are_never_restored(proxy, upstream, http):
    """Users sharing one API key: a model asked to spell out <PERSON_1> must not reveal a value
    that another request sent."""

    async def quote_person_1(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(chat_completion("The contact is <PERSON_1>."))

    key = {"Authorization": "Bearer sk-shared"}
    async with http.post(chat_url(proxy), json=user_body(f"The contact is {PERSON}."), headers=key) as response:
        assert response.status == 200
    upstream.fake.behaviour = quote_person_1
    async with http.post(chat_url(proxy), json=user_body("Spell PERSON_1 in brackets."), headers=key) as response:
        assert (await response.json())["choices"][0]["message"]["content"] == "The contact is <PERSON_1>."


async def test_responses_previous_response_id_restores_the_earlier_turns_values(proxy, upstream, http):
    async def quote_person_1(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(responses_object([responses_message("As discussed, <PERSON_1> it is.")]))

    alice, bob = {"Authorization": "Bearer sk-client-a"}, {"Authorization": "Bearer sk-client-b"}
    first = {"model": "gpt-4.1", "input": f"The contact is {PERSON}."}
    async with http.post(f"{proxy.base_url}/responses", json=first, headers=alice) as response:
        assert (await response.json())["id"] == "resp_fake"
    upstream.fake.behaviour = quote_person_1
    follow_up = {"model": "gpt-4.1", "input": "Who was it?", "previous_response_id": "resp_fake"}
    async with http.post(f"{proxy.base_url}/responses", json=follow_up, headers=alice) as response:
        text = (await response.json())["output"][0]["content"][0]["text"]
    assert text == f"As discussed, {PERSON} it is."
    async with http.post(f"{proxy.base_url}/responses", json=follow_up, headers=bob) as response:
        text = (await response.json())["output"][0]["content"][0]["text"]
    assert text == "As discussed, <PERSON_1> it is."  # another client: never restored


async def test_a_value_detected_earlier_is_replaced_even_where_the_detector_misses_it(proxy, upstream, http):
    headers = {"Authorization": "Bearer sk-client-a"}
    async with http.post(chat_url(proxy), json=user_body(f"My name is {PERSON}."), headers=headers) as response:
        assert response.status == 200
    body = user_body("Hello", metadata={"note": "jane roe"})  # lower case, bare: NER alone would not flag it
    async with http.post(chat_url(proxy), json=body, headers=headers) as response:
        assert response.status == 200
    assert json.loads(upstream.fake.received[1].raw)["metadata"]["note"] == "<PERSON_1>"


async def test_request_scope_forgets_between_requests(make_proxy, upstream, http):
    proxy = await make_proxy(placeholder_scope="request")
    upstream.fake.behaviour = None
    async with http.post(chat_url(proxy), json=user_body(f"The contact is {PERSON}.")) as response:
        assert response.status == 200

    async def quote(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.json_response(chat_completion("<PERSON_1>"))

    upstream.fake.behaviour = quote
    async with http.post(chat_url(proxy), json=user_body("Who?")) as response:
        assert (await response.json())["choices"][0]["message"]["content"] == "<PERSON_1>"


def test_the_vault_keeps_a_bounded_number_of_clients():
    vault = PlaceholderVault(ttl=60, max_entries=10, max_tenants=2)
    for tenant in ("a", "b", "c"):
        PlaceholderMap(store=vault.store_for(tenant)).placeholder_for(PERSON, "PERSON")
    assert len(vault) == 2


def test_every_streamed_delta_family_is_restored_split_safe():
    from redaction.openai_responses import ResponsesEventRestorer

    mapping = PlaceholderMap()
    email = mapping.placeholder_for("jane.roe@example.com", "EMAIL_ADDRESS")
    restorer = ResponsesEventRestorer(mapping, {})
    arguments = json.dumps({"to": email})
    out = []
    for family in ("response.mcp_call_arguments", "response.custom_tool_call_input"):
        pieces = []
        for char in arguments:
            event = {"type": f"{family}.delta", "item_id": family, "output_index": 0, "delta": char}
            pieces += [data["delta"] for _, data in restorer.restore(None, event)]
        done = {"type": f"{family}.done", "item_id": family, "output_index": 0}
        pieces += [data["delta"] for _, data in restorer.restore(None, done) if data["type"].endswith(".delta")]
        out.append("".join(pieces))
    assert json.loads(out[0]) == {"to": "jane.roe@example.com"}
    assert out[1] == arguments.replace(email, "jane.roe@example.com")
