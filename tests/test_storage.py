import asyncio
import base64
import errno
import itertools
import logging
import os
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from storage import (
    ChainAppender,
    DecryptionFailed,
    ExchangeRecord,
    ExchangeRow,
    Keyring,
    LogWriter,
    UnknownKey,
    load_keyring,
    new_record_id,
    seal,
    unseal,
)
from storage.blind_index import subject_digest
from storage.chain import GENESIS, head_mac, link
from storage.crypto import KeyError_, associated_data, decode_key, key_id_for
from storage.database import make_sync_writer_engine
from storage.envelope import KeyAccess
from storage.models import ENCRYPTED_COLUMNS
from storage.verify import verify_log
from storage.writer import MAX_BATCH
from storage.writer_process import AppenderSpec, ProcessAppender

SECRET_TEXT = "Jane Roe, card 4111 1111 1111 1111, jane.roe@example.com"


def make_record(record_id: str | None = None) -> ExchangeRecord:
    return ExchangeRecord(
        id=record_id or new_record_id(),
        client_id="team-a",
        endpoint="/v1/chat/completions",
        created_at=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        model="gpt-4o-mini",
        stream=True,
        status=200,
        outcome="ok",
        latency_total_ms=123.5,
        latency_detection_ms=12.25,
        latency_upstream_ms=100.0,
        entity_counts={"PERSON": 1, "CREDIT_CARD": 1},
        original_request=f'{{"content": "{SECRET_TEXT}"}}'.encode(),
        sanitized_request=b'{"content": "<PERSON_1>, card <CREDIT_CARD_1>"}',
        response="Réponse pour Jane Roe ✓".encode(),
        mapping={"<PERSON_1>": {"value": "Jane Roe", "type": "PERSON"}},
    )


# --- Keyring and keys


def test_encrypt_decrypt_round_trip():
    keyring = Keyring.with_key(os.urandom(32))
    aad = associated_data("exchanges", "r1", "response")
    blob = keyring.encrypt(SECRET_TEXT.encode(), aad)
    assert SECRET_TEXT.encode() not in blob
    assert keyring.decrypt(keyring.active_id, blob, aad) == SECRET_TEXT.encode()
    # fresh nonce each time
    assert keyring.encrypt(SECRET_TEXT.encode(), aad) != blob


def test_older_keys_still_decrypt():
    old = Keyring.with_key(os.urandom(32))
    aad = associated_data("exchanges", "r1", "response")
    blob = old.encrypt(b"payload", aad)
    rotated = Keyring.with_key(os.urandom(32), old.keys[old.active_id])
    assert rotated.active_id != old.active_id
    assert rotated.decrypt(old.active_id, blob, aad) == b"payload"


@pytest.mark.parametrize(
    "moved_to",
    [
        ("exchanges", "r2", "response"),  # another record
        ("exchanges", "r1", "original_request"),  # another column
        ("audit", "r1", "response"),  # another table
    ],
)
def test_ciphertext_is_bound_to_table_record_and_column(moved_to: tuple[str, str, str]):
    keyring = Keyring.with_key(os.urandom(32))
    blob = keyring.encrypt(b"payload", associated_data("exchanges", "r1", "response"))
    with pytest.raises(DecryptionFailed):
        keyring.decrypt(keyring.active_id, blob, associated_data(*moved_to))


def test_tampered_ciphertext_or_wrong_key_fails():
    keyring = Keyring.with_key(os.urandom(32))
    aad = associated_data("exchanges", "r1", "response")
    blob = bytearray(keyring.encrypt(b"payload", aad))
    blob[-1] ^= 1
    with pytest.raises(DecryptionFailed):
        keyring.decrypt(keyring.active_id, bytes(blob), aad)
    blob[-1] ^= 1
    blob[0] = 2  # unknown format version
    with pytest.raises(DecryptionFailed):
        keyring.decrypt(keyring.active_id, bytes(blob), aad)
    other = Keyring.with_key(os.urandom(32))
    other.keys[keyring.active_id] = other.keys[other.active_id]  # right id, wrong key
    blob[0] = 1
    with pytest.raises(DecryptionFailed):
        other.decrypt(keyring.active_id, bytes(blob), aad)


def test_unknown_key_id_raises_unknown_key():
    keyring = Keyring.with_key(os.urandom(32))
    aad = associated_data("exchanges", "r1", "response")
    blob = keyring.encrypt(b"payload", aad)
    other = Keyring.with_key(os.urandom(32))
    with pytest.raises(UnknownKey):
        other.decrypt(keyring.active_id, blob, aad)


def test_key_id_is_stable_and_does_not_reveal_the_key():
    key = os.urandom(32)
    assert key_id_for(key) == key_id_for(bytes(key)) == Keyring.with_key(key).active_id
    assert key_id_for(key) != key_id_for(os.urandom(32))
    assert key.hex() not in key_id_for(key)
    assert base64.b64encode(key).decode() not in key_id_for(key)


@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_decode_key_accepts_standard_and_urlsafe_base64(encode):
    for _ in range(20):  # random keys exercise "+", "/", "-" and "_"
        key = os.urandom(32)
        assert decode_key(encode(key).decode()) == key
        assert decode_key(" " + encode(key).decode().rstrip("=") + "\n") == key


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_decode_key_rejects_wrong_lengths_without_echoing_the_key(length: int):
    key_text = base64.b64encode(os.urandom(length) if length else b"").decode()
    with pytest.raises(KeyError_) as raised:
        decode_key(key_text)
    message = str(raised.value)
    assert "32" in message
    if key_text:
        assert key_text not in message and key_text.rstrip("=") not in message


def test_decode_key_rejects_garbage_without_echoing_it():
    for garbage in ("correct horse battery staple", "Zm9vYmFy$$", "not base64 at all!"):
        with pytest.raises(KeyError_) as raised:
            decode_key(garbage)
        assert garbage not in str(raised.value)
        assert "horse" not in str(raised.value)


def test_load_keyring_generates_a_0600_key_file_once(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    key_file = tmp_path / "keys" / "log.key"
    with caplog.at_level(logging.WARNING, logger="storage.keys"):
        first = load_keyring(None, key_file)
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_text = key_file.read_text().strip()
    assert decode_key(key_text) == first.keys[first.active_id]
    assert "generated a new log encryption key" in caplog.text
    assert key_text not in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="storage.keys"):
        second = load_keyring(None, key_file)
    assert second == first
    assert key_file.read_text().strip() == key_text
    assert caplog.text == ""


def test_replicas_starting_together_agree_on_one_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A second replica that looks while the first is creating the key file must neither find it
    half written nor replace it: both end up with the same, complete key."""
    import storage.keys

    key_file = tmp_path / "log.key"
    make_key = storage.keys.new_key_text
    seen_by_second: list = []
    calls = itertools.count()

    def first_replicas_key() -> str:
        if next(calls) == 0:  # the second replica starts (and finishes) in the middle
            seen_by_second.append(load_keyring(None, key_file))
        return make_key()

    monkeypatch.setattr(storage.keys, "new_key_text", first_replicas_key)
    first = load_keyring(None, key_file)
    assert first == seen_by_second[0]
    assert decode_key(key_file.read_text().strip()) == first.keys[first.active_id]
    assert [p.name for p in tmp_path.iterdir()] == ["log.key"]  # no temporary file left behind


def test_key_file_on_a_file_system_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def refuse(*_args: object) -> None:
        raise PermissionError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", refuse)
    key_file = tmp_path / "log.key"
    keyring = load_keyring(None, key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert decode_key(key_file.read_text().strip()) == keyring.keys[keyring.active_id]
    assert load_keyring(None, key_file) == keyring
    assert [p.name for p in tmp_path.iterdir()] == ["log.key"]


def test_load_keyring_prefers_the_configured_key(tmp_path: Path):
    key = os.urandom(32)
    key_file = tmp_path / "log.key"
    keyring = load_keyring(base64.b64encode(key).decode(), key_file)
    assert keyring.keys == {key_id_for(key): key}
    assert not key_file.exists()


def test_load_keyring_rejects_a_corrupt_key_file(tmp_path: Path):
    key_file = tmp_path / "log.key"
    key_file.write_text(base64.b64encode(b"short").decode())
    with pytest.raises(KeyError_):
        load_keyring(None, key_file)


# --- sealing


def test_seal_unseal_round_trip_is_exact():
    keyring = Keyring.with_key(os.urandom(32))
    record = make_record()
    row = seal(record, keyring)
    assert row.key_id == keyring.active_id
    for column in ENCRYPTED_COLUMNS:
        blob = getattr(row, column)
        assert isinstance(blob, bytes)
        assert b"Jane Roe" not in blob and b"4111" not in blob
    assert unseal(row, keyring) == record


def test_seal_unseal_round_trip_with_empty_payloads():
    keyring = Keyring.with_key(os.urandom(32))
    record = replace(
        make_record(), original_request=None, sanitized_request=b"", response=None, mapping=None, model=None
    )
    row = seal(record, keyring)
    assert row.original_request is None and row.response is None and row.mapping is None
    assert unseal(row, keyring) == record


def test_a_value_with_a_lone_surrogate_is_sealed_and_read_back():
    """A request's JSON may escape a lone surrogate; UTF-8 cannot hold one, and the record (so the
    whole batch) failed to seal."""
    keyring = Keyring.with_key(os.urandom(32))
    record = replace(make_record(), mapping={"<PERSON_1>": {"value": "Jane\ud800Roe", "type": "PERSON"}})
    assert unseal(seal(record, keyring), keyring) == record


def test_chain_digests_of_stored_logs_never_change():
    """Every stored chain holds these digests: a change of serialisation or HMAC call that alters
    one byte would make every existing log fail verification (values from the released format)."""
    row = SimpleNamespace(
        id="0" * 31 + "1", kind="exchange", client_id="team-a", endpoint="/v1/chat/completions",
        model="gpt-4o-mini", stream=True, status=200, outcome="ok", latency_total_ms=123.5,
        latency_detection_ms=12.25, latency_upstream_ms=None, training_consent=True, target=None,
        writer_id="proxy", seq=7, created_at=datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        entity_counts={"PERSON": 2, "EMAIL_ADDRESS": 1}, payload_digest=bytes(range(32)),
    )  # fmt: skip
    key = bytes(range(100, 132))
    assert link(key, GENESIS, row).hex() == "5f10e283171a88e3299f6ab760c6b6f2a3b47f3cacef9c137feb9570ec57c812"
    chain = SimpleNamespace(writer_id="proxy", base_seq=3, head_seq=7, base_hash=GENESIS, head_hash=bytes(range(32)))
    assert head_mac(key, chain).hex() == "30c35880a675d9599f3015781886c4b76f5ed7c1fba9e4fb313d9750eeea3cc8"
    assert subject_digest(key, "  Jane\u00a0ROE ").hex() == (
        "89e19ed05fcd0abddb5fe5e84a00d44844385eb2ead5df7e6e67a1cf9e6e6750"
    )


def test_unseal_rejects_a_payload_moved_to_another_row():
    keyring = Keyring.with_key(os.urandom(32))
    first, second = seal(make_record("a" * 32), keyring), seal(make_record("b" * 32), keyring)
    second.response = first.response
    with pytest.raises(DecryptionFailed):
        unseal(second, keyring)
    second = seal(make_record("b" * 32), keyring)
    second.response, second.original_request = second.original_request, second.response
    with pytest.raises(DecryptionFailed):
        unseal(second, keyring)


def test_new_record_ids_are_unique_and_time_ordered():
    ids = [new_record_id() for _ in range(2000)]  # many within one millisecond
    assert len(set(ids)) == 2000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert ids == sorted(ids)  # in the order they were made, also within a millisecond


# --- LogWriter against a real database (SQLite file and PostgreSQL)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.with_key(os.urandom(32))


async def read_rows(engine: AsyncEngine) -> list[ExchangeRow]:
    async with async_sessionmaker(engine)() as session:
        return list((await session.execute(select(ExchangeRow).order_by(ExchangeRow.id))).scalars().all())


def database_bytes(directory: Path) -> bytes:
    """The SQLite file and its WAL, as stored on disk."""
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.name.startswith("log.db"))


def inline(engine: AsyncEngine, keyring: Keyring) -> ChainAppender:
    return ChainAppender(async_sessionmaker(engine), keyring, "proxy")


def in_child(engine: AsyncEngine, keyring: Keyring) -> ProcessAppender:
    url = engine.url.render_as_string(hide_password=False)
    return ProcessAppender(AppenderSpec(url, keyring, None, "proxy"))


@pytest.fixture(params=[inline, in_child], ids=["inline", "log-process"])
def appender(request: pytest.FixtureRequest, engine: AsyncEngine, keyring: Keyring) -> ChainAppender | ProcessAppender:
    """The same writer with its sealing and database work in this process, and in the log process."""
    return request.param(engine, keyring)


async def test_writer_writes_submitted_records(
    engine: AsyncEngine, keyring: Keyring, appender: ChainAppender | ProcessAppender, tmp_path: Path
):
    writer = LogWriter(appender)
    writer.start()
    try:
        records = [make_record(f"{n:032x}") for n in range(5)]
        assert all(writer.submit(record) for record in records)
        await writer.wait_idle()
        assert writer.stats.written == 5 and writer.stats.failed == 0 and writer.stats.rejected == 0
        assert writer.queue_depth == 0
    finally:
        await writer.close(5)

    rows = await read_rows(engine)
    assert [row.id for row in rows] == [r.id for r in records]
    for row, record in zip(rows, records, strict=True):
        back = unseal(row, keyring)
        assert replace(back, created_at=record.created_at) == record
    if engine.dialect.name == "sqlite":  # no payload is stored in clear
        raw = database_bytes(tmp_path)
        assert b"Jane Roe" not in raw and b"4111 1111" not in raw


async def test_written_created_at_is_the_same_aware_instant(engine: AsyncEngine, keyring: Keyring):
    writer = LogWriter(inline(engine, keyring))
    writer.start()
    try:
        record = make_record()
        writer.submit(record)
        await writer.wait_idle()
    finally:
        await writer.close(5)
    [row] = await read_rows(engine)
    back = unseal(row, keyring)
    assert back.created_at.tzinfo is not None, "DateTime(timezone=True) read back as a naive datetime"
    assert back.created_at == record.created_at


async def test_writer_retries_then_reports_failure_without_payload(
    engine: AsyncEngine, appender: ChainAppender | ProcessAppender, caplog: pytest.LogCaptureFixture
):
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE exchanges"))
    writer = LogWriter(appender, attempts=3, first_backoff=0.001)
    writer.start()
    record = make_record()
    try:
        with caplog.at_level(logging.WARNING, logger="storage.writer"):
            assert writer.submit(record)
            await writer.wait_idle()
    finally:
        await writer.close(5)
    assert writer.stats.failed == 1
    assert writer.stats.retries == 2
    assert writer.stats.written == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and record.id in errors[0].getMessage()
    assert "ProgrammingError" in errors[0].getMessage() or "OperationalError" in errors[0].getMessage()
    for secret in ("Jane Roe", "4111", "jane.roe@example.com", "CREDIT_CARD_1", "PERSON_1"):
        assert secret not in caplog.text


async def test_a_killed_log_process_is_replaced_and_loses_nothing(engine: AsyncEngine, keyring: Keyring):
    appender = in_child(engine, keyring)
    writer = LogWriter(appender, attempts=3, first_backoff=0.001)
    writer.start()
    try:
        first, second = make_record(f"{1:032x}"), make_record(f"{2:032x}")
        writer.submit(first)
        await writer.wait_idle()
        child = appender._process
        assert child is not None and child.is_alive()
        child.kill()
        child.join()
        writer.submit(second)
        await writer.wait_idle()
        assert (writer.stats.written, writer.stats.failed) == (2, 0)
        assert writer.stats.retries == 1 and appender.restarts == 1 and writer.healthy
    finally:
        await writer.close(5)
    assert [row.id for row in await read_rows(engine)] == [first.id, second.id]
    report = await verify_log(async_sessionmaker(engine), KeyAccess(keyring))
    assert report.ok, report.problems


async def test_records_of_both_drivers_continue_one_chain(engine: AsyncEngine, keyring: Keyring):
    """The log process writes SQLite through the synchronous driver, a proxy without it through
    aiosqlite: batches of either continue the same chain, and the whole log verifies."""
    url = engine.url.render_as_string(hide_password=False)
    sync_engine = make_sync_writer_engine(url)
    if engine.dialect.name != "sqlite":
        assert sync_engine is None  # PostgreSQL: the log process uses asyncpg like the proxy
        return
    assert sync_engine is not None
    through_async = ChainAppender(async_sessionmaker(engine), keyring, "proxy")
    through_sync = ChainAppender(async_sessionmaker(engine), keyring, "proxy", sync_engine)
    records = [make_record(f"{n:032x}") for n in range(6)]
    try:
        await through_sync.append(records[:2])
        await through_async.append(records[2:3])
        await through_sync.append(records[3:])
    finally:
        sync_engine.dispose()
    rows = await read_rows(engine)
    assert [(row.id, row.seq) for row in rows] == [(r.id, n) for n, r in enumerate(records, start=1)]
    report = await verify_log(async_sessionmaker(engine), KeyAccess(keyring))
    assert report.ok, report.problems


def test_the_log_process_reads_the_chain_head_under_the_write_lock(tmp_path: Path):
    """Python's sqlite3 begins a transaction only at the first write, so the head the chain
    continues from was read outside of it; the writer's engine begins IMMEDIATE instead."""
    engine = make_sync_writer_engine(f"sqlite+aiosqlite:///{tmp_path}/log.db")
    assert engine is not None
    other = sqlite3.connect(tmp_path / "log.db", timeout=0)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("SELECT 1")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("CREATE TABLE elsewhere (a)")
        other.execute("CREATE TABLE elsewhere (a)")  # free again after the commit
    finally:
        other.close()
        engine.dispose()


class BatchRecorder:
    """An appender that only remembers the batches it was given (tests the writer's batching)."""

    writer_id = "proxy"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.appended = asyncio.Event()

    async def start(self) -> None: ...

    async def append(self, records: list[ExchangeRecord]) -> None:
        self.batches.append([r.id for r in records])
        self.appended.set()
        await asyncio.sleep(0)

    async def close(self) -> None: ...


async def test_records_wait_up_to_the_flush_interval_to_share_a_transaction():
    recorder = BatchRecorder()
    writer = LogWriter(recorder, flush_interval=30.0)
    writer.start()
    try:
        writer.submit(make_record(f"{1:032x}"))
        for _ in range(5):  # the writer takes the first record and waits for company
            await asyncio.sleep(0)
        assert recorder.batches == []
        writer.submit(make_record(f"{2:032x}"))
        writer.submit(make_record(f"{3:032x}"))
        await writer.wait_idle()  # asks for the flush now, not 30 s later
    finally:
        await writer.close(5)
    assert recorder.batches == [[f"{n:032x}" for n in (1, 2, 3)]]


async def test_a_full_batch_is_written_without_waiting_for_the_interval():
    recorder = BatchRecorder()
    writer = LogWriter(recorder, flush_interval=30.0)
    writer.start()
    try:
        for n in range(MAX_BATCH + 1):
            writer.submit(make_record(f"{n:032x}"))
        await asyncio.wait_for(recorder.appended.wait(), 5)  # long before the 30 s interval
        assert len(recorder.batches[0]) == MAX_BATCH
    finally:
        await writer.close(5)
    assert [len(b) for b in recorder.batches] == [MAX_BATCH, 1]


async def test_writer_recovers_when_a_retry_succeeds(engine: AsyncEngine, keyring: Keyring):
    sessions = async_sessionmaker(engine)
    calls = 0

    class FlakySessions:
        def __call__(self):
            return sessions()

        def begin(self):
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("database briefly unavailable")
            return sessions.begin()

    flaky = ChainAppender(FlakySessions(), keyring, "proxy")  # type: ignore[arg-type]
    writer = LogWriter(flaky, attempts=3, first_backoff=0.001)
    writer.start()
    try:
        writer.submit(make_record())
        await writer.wait_idle()
    finally:
        await writer.close(5)
    assert (writer.stats.written, writer.stats.retries, writer.stats.failed) == (1, 1, 0)
    assert len(await read_rows(engine)) == 1


async def test_writer_rejects_when_queue_is_full(
    engine: AsyncEngine, keyring: Keyring, caplog: pytest.LogCaptureFixture
):
    writer = LogWriter(inline(engine, keyring), queue_size=2)  # not started: nothing drains
    first, second, third = make_record(), make_record(), make_record()
    with caplog.at_level(logging.ERROR, logger="storage.writer"):
        assert writer.submit(first) and writer.submit(second)
        assert not writer.submit(third)
    assert writer.stats.rejected == 1
    assert writer.queue_depth == 2
    assert third.id in caplog.text and "Jane Roe" not in caplog.text

    writer.start()
    try:
        await writer.wait_idle()
    finally:
        await writer.close(5)
    assert writer.stats.written == 2
    assert [row.id for row in await read_rows(engine)] == sorted([first.id, second.id])


async def test_one_record_the_database_refuses_costs_only_itself(
    engine: AsyncEngine, appender: ChainAppender | ProcessAppender
):
    """A lone surrogate cannot be stored as text by either backend: only that record is lost."""
    writer = LogWriter(appender, attempts=2, first_backoff=0.001)
    writer.start()
    try:
        records = [make_record(f"{n:032x}") for n in range(5)]
        records[4] = replace(records[4], model="gpt\ud800")
        for record in records:
            writer.submit(record)
        await writer.wait_idle()
        assert (writer.stats.written, writer.stats.failed) == (4, 1)
        assert writer.healthy is False
        writer.submit(make_record(f"{9:032x}"))
        await writer.wait_idle()
        assert writer.healthy is True
    finally:
        await writer.close(5)
    assert [row.id for row in await read_rows(engine)] == [f"{n:032x}" for n in (0, 1, 2, 3, 9)]


async def test_writer_queue_is_bounded_in_bytes(engine: AsyncEngine, keyring: Keyring):
    writer = LogWriter(inline(engine, keyring), queue_bytes=1000)  # not started: nothing drains
    big = replace(make_record(), response=b"x" * 600)
    assert writer.submit(big) is True
    assert writer.submit(replace(big, id=new_record_id())) is False
    assert writer.stats.rejected == 1 and writer.healthy is False
