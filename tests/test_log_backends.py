"""The proxy's log on each backend: SQLite and a real PostgreSQL server."""

from __future__ import annotations

from sqlalchemy import text

from storage import make_engine

PLANTED = ("Jane Roe", "jane.roe@example.com", "4111 1111 1111 1111")


async def test_exchange_is_logged_encrypted_and_readable_back(make_proxy, database_url, upstream, http):
    proxy = await make_proxy(database_url=database_url)
    async with http.get(f"{proxy.url}/readyz") as response:
        assert response.status == 200, await response.text()
    prompt = "Jane Roe (jane.roe@example.com) paid with 4111 1111 1111 1111."
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    async with http.post(f"{proxy.base_url}/chat/completions", json=body) as response:
        assert (await response.json())["choices"][0]["message"]["content"] == prompt

    [record] = await proxy.records()
    assert record.original_request is not None and prompt.encode() in record.original_request
    assert record.entity_counts == {"PERSON": 1, "EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}
    assert record.created_at.tzinfo is not None

    # the whole table, as the database returns it in text form, holds no planted value
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT * FROM exchanges"))).all()
    finally:
        await engine.dispose()
    dump = repr(rows)
    assert len(rows) == 1
    for value in PLANTED:
        assert value not in dump and value.encode().hex() not in dump
