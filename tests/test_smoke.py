async def test_round_trip_hides_and_restores_a_name(proxy, upstream, http):
    body = {"model": "m", "messages": [{"role": "user", "content": "My name is John Smith."}]}
    async with http.post(f"{proxy.base_url}/chat/completions", json=body) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["choices"][0]["message"]["content"] == "My name is John Smith."
    sent = upstream.fake.received[0].raw.decode()
    assert "John Smith" not in sent and "<PERSON_1>" in sent
    records = await proxy.records()
    assert len(records) == 1 and records[0].original_request is not None
    assert b"John Smith" in records[0].original_request
