"""The exchange log at rest: what is on disk, what decrypts, and what must not.

Plaintext personal data may exist only inside encrypted columns. These tests plant obviously
synthetic values, run real exchanges (JSON and SSE), then read the SQLite files byte by byte.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage import DecryptionFailed, ExchangeRow, Keyring, load_keyring, make_engine, unseal
from storage.crypto import key_id_for

NAME = "Jane Roe"
EMAIL = "jane.roe@example.com"
PHONE = "212-555-0187"
CARD = "4111 1111 1111 1111"
IBAN = "GB29NWBK60161331926819"
SSN = "536-22-8726"
PLANTED = {
    "PERSON": NAME,
    "EMAIL_ADDRESS": EMAIL,
    "PHONE_NUMBER": PHONE,
    "CREDIT_CARD": CARD,
    "IBAN_CODE": IBAN,
    "US_SSN": SSN,
}
ALL_TYPES = {entity: 1 for entity in PLANTED}
TEXT = (
    f"Hello, my name is {NAME}. E-mail {EMAIL}, phone {PHONE}. Please charge card {CARD} "
    f"or debit IBAN {IBAN}; my SSN is {SSN}."
)
JSON_HEADERS = {"Content-Type": "application/json"}


def needles() -> list[bytes]:
    """Every planted value as it could appear on disk: as typed, lower case, digits only.

    All at least 8 bytes long, so that random ciphertext cannot match one by chance.
    """
    found: list[bytes] = []
    for value in PLANTED.values():
        found += [value.encode(), value.lower().encode()]
        digits = "".join(c for c in value if c.isdigit())
        if len(digits) >= 9:
            found.append(digits.encode())
    return found


def assert_no_plaintext(directory: Path) -> list[str]:
    """Scan every file of the log's directory (database, -wal, -shm, key); return their names."""
    names = []
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        names.append(path.name)
        data = path.read_bytes()
        lowered = data.lower()
        for needle in needles():
            assert needle.lower() not in lowered, f"{needle!r} in clear in {path.name}"
            assert needle.decode().encode("utf-16-le") not in data, f"{needle!r} as UTF-16 in {path.name}"
    return names


def raw_request(body: dict) -> bytes:
    """Distinctive formatting, so that 'the exact original bytes' is a meaningful comparison."""
    return json.dumps(body, indent=1).encode()


async def post(http, proxy, raw: bytes) -> tuple[int, bytes]:
    """Send exact bytes; read the answer to its end (the record is handed over by then)."""
    async with http.post(f"{proxy.base_url}/chat/completions", data=raw, headers=JSON_HEADERS) as response:
        return response.status, await response.read()


async def rows_of(proxy) -> list[ExchangeRow]:
    await proxy.state.writer.wait_idle()
    engine = make_engine(proxy.settings.database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            return list((await session.execute(select(ExchangeRow).order_by(ExchangeRow.id))).scalars().all())
    finally:
        await engine.dispose()


@contextmanager
def sqlite(database: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the log file (committed and closed on exit)."""
    with closing(sqlite3.connect(database, timeout=10)) as connection, connection:
        yield connection


def clear_columns(database: Path) -> list[tuple]:
    with sqlite(database) as connection:
        return connection.execute(
            "SELECT endpoint, model, stream, status, outcome, entity_counts FROM exchanges ORDER BY id"
        ).fetchall()


def tool_history_request() -> dict:
    return {
        "model": "gpt-tools",
        "messages": [
            {"role": "user", "content": f"Find the customer with e-mail {EMAIL}."},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"email": EMAIL})},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": json.dumps({"name": NAME, "card": CARD, "iban": IBAN, "phone": PHONE}),
            },
            {"role": "user", "content": f"Also note my SSN is {SSN}."},
        ],
    }


async def test_log_holds_no_plaintext_and_decrypts_to_the_exact_exchanges(proxy, upstream, http, tmp_path):
    upstream.fake.piece_size = 1
    plain = raw_request({"model": "gpt-plain", "messages": [{"role": "user", "content": TEXT}]})
    streamed = raw_request(
        {
            "model": "gpt-stream",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": TEXT}],
        }
    )
    tools = raw_request(tool_history_request())
    malformed = raw_request({"model": "gpt-plain", "messages": TEXT})  # refused: a string, not an array

    answers = [await post(http, proxy, raw) for raw in (plain, streamed, tools, malformed)]
    assert [status for status, _ in answers] == [200, 200, 200, 400]
    assert json.loads(answers[0][1])["choices"][0]["message"]["content"] == TEXT
    assert TEXT.encode() not in answers[3][1]

    # --- on disk: the WAL holds the fresh pages; nothing readable anywhere, in any file
    database = proxy.database_file()
    await proxy.state.writer.wait_idle()
    wal = database.with_name(f"{database.name}-wal")
    assert wal.is_file() and wal.stat().st_size > 0
    files = assert_no_plaintext(database.parent)
    assert {database.name, wal.name, f"{database.name}-shm"} <= set(files)
    with sqlite(database) as connection:
        assert connection.execute("PRAGMA encoding").fetchone()[0] == "UTF-8"  # text is UTF-8, not UTF-16
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    # --- metadata, read straight from the file: in clear and right
    clear = clear_columns(database)
    assert len(clear) == 4
    endpoints, models, streams, statuses, outcomes, counts = zip(*clear, strict=True)
    assert set(endpoints) == {"/v1/chat/completions"}
    assert models[:3] == ("gpt-plain", "gpt-stream", "gpt-tools")
    assert streams == (0, 1, 0, 0)
    assert statuses == (200, 200, 200, 400)
    assert outcomes[:3] == ("ok", "ok", "ok") and outcomes[3] != "ok"
    assert [json.loads(c) for c in counts] == [ALL_TYPES, ALL_TYPES, ALL_TYPES, {}]

    # --- every record decrypts to exactly what went in and out
    records = await proxy.records()
    assert [r.original_request for r in records] == [plain, streamed, tools, malformed]
    assert [r.response for r in records[:3]] == [body for _, body in answers[:3]]
    assert records[3].sanitized_request is None and records[3].mapping is None
    assert [r.sanitized_request for r in records[:3]] == [received.raw for received in upstream.fake.received]
    assert len(upstream.fake.received) == 3  # the malformed request was never forwarded

    for record in records[:3]:
        for value in PLANTED.values():
            assert value.encode() not in record.sanitized_request
        assert {entry["type"]: entry["value"] for entry in record.mapping.values()} == PLANTED
        for placeholder in record.mapping:
            assert placeholder.encode() in record.sanitized_request
        assert record.entity_counts == ALL_TYPES
        assert record.latency_total_ms > 0
        assert record.latency_detection_ms is not None and record.latency_detection_ms > 0
        assert record.latency_upstream_ms is not None and record.latency_upstream_ms > 0
        assert record.latency_total_ms >= record.latency_upstream_ms
    # the streamed answer as the client got it: SSE, values restored, one [DONE]
    assert records[1].response.count(b"data: [DONE]") == 1
    events = [json.loads(line[6:]) for line in records[1].response.decode().splitlines() if line.startswith("data: {")]
    assert "".join(c["delta"].get("content") or "" for e in events for c in e["choices"]) == TEXT
    assert b'"usage"' in records[1].response
    assert records[3].latency_total_ms > 0 and records[3].entity_counts == {}

    # after a checkpoint the pages live in the main file: still nothing in clear
    with sqlite(database) as connection:
        assert connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy
    assert_no_plaintext(database.parent)


async def test_ciphertext_moved_to_another_row_or_column_fails_to_decrypt(proxy, http, tmp_path):
    for content in (f"I am {NAME}.", f"Mail {EMAIL}.", f"Call {PHONE}."):
        status, _ = await post(
            http, proxy, raw_request({"model": "m", "messages": [{"role": "user", "content": content}]})
        )
        assert status == 200
    rows = await rows_of(proxy)
    keyring = load_keyring(None, proxy.settings.encryption_key_file)
    assert [b"I am" in unseal(row, keyring).original_request for row in rows] == [True, False, False]
    first, second, third = (row.id for row in rows)

    # the proxy has written everything; tamper with the file directly
    with sqlite(proxy.database_file()) as connection:
        connection.execute(
            "UPDATE exchanges SET original_request = (SELECT original_request FROM exchanges WHERE id = ?) "
            "WHERE id = ?",
            (first, second),
        )
        connection.execute("UPDATE exchanges SET original_request = sanitized_request WHERE id = ?", (third,))

    by_id = {row.id: row for row in await rows_of(proxy)}
    assert unseal(by_id[first], keyring).original_request is not None  # the source row is untouched
    with pytest.raises(DecryptionFailed):
        unseal(by_id[second], keyring)  # same key, same column, another row
    with pytest.raises(DecryptionFailed):
        unseal(by_id[third], keyring)  # same row, another column
    with pytest.raises(DecryptionFailed):
        await proxy.records()


async def test_generated_key_file_is_private_and_identifies_the_records(proxy, http, tmp_path):
    key_file = tmp_path / "log.key"
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = base64.urlsafe_b64decode(key_file.read_text().strip())
    assert len(key) == 32

    status, _ = await post(http, proxy, raw_request({"model": "m", "messages": [{"role": "user", "content": TEXT}]}))
    assert status == 200
    [row] = await rows_of(proxy)
    assert row.key_id == key_id_for(key)
    assert key.hex().encode() not in proxy.database_file().read_bytes()


async def test_configured_key_creates_no_key_file(make_proxy, http, tmp_path):
    key = os.urandom(32)
    proxy = await make_proxy(encryption_key=base64.b64encode(key).decode())
    raw = raw_request({"model": "m", "messages": [{"role": "user", "content": TEXT}]})
    status, _ = await post(http, proxy, raw)
    assert status == 200

    [row] = await rows_of(proxy)
    assert not (tmp_path / "log.key").exists()
    assert not list(tmp_path.glob("*.key"))
    assert row.key_id == key_id_for(key)
    assert unseal(row, Keyring.with_key(key)).original_request == raw
    with pytest.raises(DecryptionFailed):  # another key under the same id does not read it
        unseal(row, Keyring(active_id=row.key_id, keys={row.key_id: os.urandom(32)}))
    assert_no_plaintext(tmp_path)


async def test_log_exchanges_false_writes_nothing(make_proxy, upstream, http, tmp_path):
    upstream.fake.piece_size = 3
    proxy = await make_proxy(log_exchanges=False)
    plain = raw_request({"model": "m", "messages": [{"role": "user", "content": TEXT}]})
    streamed = raw_request({"model": "m", "stream": True, "messages": [{"role": "user", "content": TEXT}]})
    for raw in (plain, streamed):
        status, body = await post(http, proxy, raw)
        assert status == 200 and NAME.encode() in body

    await proxy.state.writer.wait_idle()
    assert proxy.state.writer.stats.written == 0
    assert proxy.state.writer.queue_depth == 0
    database = proxy.database_file()
    if database.exists():
        with sqlite(database) as connection:
            assert connection.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 0
    assert len(upstream.fake.received) == 2
    assert_no_plaintext(tmp_path)


@pytest.mark.parametrize("log_process", [False, True], ids=["inline", "log-process"])
async def test_write_only_mode_the_proxy_cannot_read_its_own_log(make_proxy, http, tmp_path, log_process):
    from storage import AuditorPrivateKey, KeyAccess, UnknownKey

    private = AuditorPrivateKey.generate()
    proxy = await make_proxy(auditor_public_key=private.public_text(), log_process=log_process)
    status, _ = await post(http, proxy, raw_request({"model": "m", "messages": [{"role": "user", "content": TEXT}]}))
    assert status == 200
    await proxy.state.writer.wait_idle()
    [row] = await rows_of(proxy)
    keyring = load_keyring(None, proxy.settings.encryption_key_file)
    with pytest.raises(UnknownKey):
        unseal(row, keyring)
    assert NAME.encode() in unseal(row, KeyAccess(keyring, auditor_private=private)).original_request
    assert_no_plaintext(tmp_path)


async def test_training_consent_from_header_client_default_and_global(make_proxy, http):
    proxy = await make_proxy(training_consent_default=False, training_consent_clients={"anonymous": True})
    raw = raw_request({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
    for header in (None, "no", "yes"):
        headers = {"Content-Type": "application/json", **({"X-Privacy-Proxy-Training": header} if header else {})}
        async with http.post(f"{proxy.base_url}/chat/completions", data=raw, headers=headers) as response:
            assert response.status == 200
    assert [r.training_consent for r in await proxy.records()] == [True, False, True]


async def test_a_consent_or_opt_out_header_the_proxy_cannot_read_is_refused(make_proxy, upstream, http):
    """ "off" or "maybe" must not be taken for consent (nor a misspelt no-log for logging)."""
    proxy = await make_proxy(training_consent_default=True, allow_log_opt_out=True)
    raw = raw_request({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
    for header, value in [("X-Privacy-Proxy-Training", "off"), ("X-Privacy-Proxy-Training", "n"),
                          ("X-Privacy-Proxy-Training", "maybe"), ("X-Privacy-Proxy-No-Log", "please")]:  # fmt: skip
        headers = {"Content-Type": "application/json", header: value}
        async with http.post(f"{proxy.base_url}/chat/completions", data=raw, headers=headers) as response:
            if value == "maybe" or value == "please":
                assert response.status == 400
                assert header in (await response.json())["error"]["message"]
            else:
                assert response.status == 200
    assert len(upstream.fake.received) == 2
    forwarded = [r for r in await proxy.records() if r.status == 200]
    assert [r.training_consent for r in forwarded] == [False, False]


async def test_the_proxy_enforces_payload_retention_as_an_audited_purge(make_proxy, http):
    proxy = await make_proxy(retention_payload_days=1e-9)
    status, _ = await post(http, proxy, raw_request({"model": "m", "messages": [{"role": "user", "content": TEXT}]}))
    assert status == 200
    await proxy.state.writer.wait_idle()
    assert await proxy.state.enforce_retention() == (1, 0)
    rows = await rows_of(proxy)
    [exchange] = [r for r in rows if r.kind == "exchange"]
    assert exchange.payload_purged_at is not None and exchange.original_request is None
    assert {r.kind for r in rows} >= {"exchange", "purge"}
