"""The audit store on SQLite and PostgreSQL: rotation, tamper evidence, erasure, reveal, retention,
write-only mode. Records are written by the real writer (chain, envelope, blind index)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from storage import (
    AuditorPrivateKey,
    AuditorPublicKey,
    ChainAppender,
    ExchangeRecord,
    KeyAccess,
    Keyring,
    RecordErased,
    UnknownKey,
    new_record_id,
    unseal,
)
from storage.audit import Auditor, Filters, get_record, list_records
from storage.models import ChainRow, ExchangeRow, SubjectIndexRow
from storage.rotation import keys_in_use, rewrap_all
from storage.verify import verify_log

SUBJECT = "jane.roe@example.com"  # synthetic


def record(text: str = "hello", *, value: str | None = SUBJECT, age_days: float = 0) -> ExchangeRecord:
    mapping = {"<EMAIL_ADDRESS_1>": {"value": value, "type": "EMAIL_ADDRESS"}} if value else None
    return ExchangeRecord(
        id=new_record_id(),
        client_id="team-a",
        endpoint="/v1/chat/completions",
        created_at=datetime.now(UTC) - timedelta(days=age_days),
        model="gpt-4o-mini",
        status=200,
        entity_counts={"EMAIL_ADDRESS": 1} if value else {},
        original_request=json.dumps({"messages": [{"role": "user", "content": f"{text} {value or ''}"}]}).encode(),
        sanitized_request=json.dumps({"messages": [{"role": "user", "content": f"{text} <EMAIL_ADDRESS_1>"}]}).encode(),
        response=b'{"choices": []}',
        mapping=mapping,
    )


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def keys() -> KeyAccess:
    return KeyAccess(Keyring.with_key(os.urandom(32)))


async def write(sessions, keys, records: list[ExchangeRecord], writer: str = "proxy-1") -> list[str]:
    appender = ChainAppender(sessions, keys, writer)
    for item in records:  # one transaction each, like a busy proxy
        await appender.append([item])
    return [item.id for item in records]


async def problems(sessions, keys) -> list[str]:
    return (await verify_log(sessions, keys)).problems


async def test_an_untouched_log_verifies_and_every_record_decrypts(sessions, keys):
    await write(sessions, keys, [record(f"r{i}") for i in range(5)])
    await write(sessions, keys, [record("other writer")], writer="proxy-2")
    report = await verify_log(sessions, keys)
    assert report.ok and (report.records, report.writers) == (6, 2)


@pytest.mark.parametrize(
    "tamper",
    ["edit_metadata", "edit_ciphertext", "delete_middle", "delete_tail", "swap_order", "move_ciphertext", "drop_chain"],
)
async def test_verify_reports_every_kind_of_tampering(sessions, keys, tamper: str):
    ids = await write(sessions, keys, [record(f"r{i}") for i in range(4)])
    async with sessions.begin() as session:
        rows = {r.id: r for r in (await session.execute(select(ExchangeRow))).scalars()}
        first, second, last = rows[ids[1]], rows[ids[2]], rows[ids[3]]
        if tamper == "edit_metadata":
            first.status = 500
        elif tamper == "edit_ciphertext":
            blob = bytearray(first.response)
            blob[-1] ^= 1
            first.response = bytes(blob)
        elif tamper == "delete_middle":
            await session.delete(first)
        elif tamper == "delete_tail":
            await session.delete(last)
        elif tamper == "swap_order":
            first_seq, second_seq = first.seq, second.seq
            first.seq = -1
            await session.flush()
            second.seq = first_seq
            await session.flush()
            first.seq = second_seq
        elif tamper == "move_ciphertext":
            first.response, second.response = second.response, first.response
        elif tamper == "drop_chain":
            await session.execute(delete(ChainRow))
    found = await problems(sessions, keys)
    assert found, tamper
    if tamper in ("delete_middle", "delete_tail"):
        assert any("missing (deleted)" in p for p in found)
    if tamper == "move_ciphertext":
        assert any("moved" in p for p in found)


async def test_a_rotated_key_still_decrypts_old_records_and_the_old_key_can_go(sessions, keys):
    old_ids = await write(sessions, keys, [record("before rotation") for _ in range(3)])
    old_key = keys.keyring.keys[keys.keyring.active_id]
    new_key = os.urandom(32)
    rotated = Keyring.with_key(new_key, old_key)
    report = await rewrap_all(sessions, rotated)
    assert report.rewrapped == 3 and report.secrets == 2 and not report.unreadable
    only_new = KeyAccess(Keyring.with_key(new_key))
    for record_id in old_ids:
        restored = unseal(await get_record(sessions, record_id), only_new)
        assert b"before rotation" in restored.original_request
    assert set(await keys_in_use(sessions)) == {only_new.keyring.active_id}
    await write(sessions, only_new, [record("after")], writer="proxy-2")
    assert await problems(sessions, only_new) == []


async def test_a_record_whose_key_is_gone_is_reported_not_a_crash(sessions, keys):
    await write(sessions, keys, [record()])
    stranger = os.urandom(32)
    async with sessions.begin() as session:
        row = (await session.execute(select(ExchangeRow))).scalar_one()
        row.key_id = "k1-0000000000000000"
    with pytest.raises(UnknownKey):
        unseal(await get_record(sessions, row.id), keys)
    assert stranger  # a key nobody configured
    found = await problems(sessions, keys)
    assert any("not configured" in p for p in found)


async def test_a_subject_is_found_whatever_punctuation_the_request_for_erasure_uses(sessions, keys):
    card, phone = "4111 1111 1111 1111", "+1 212 555 0100"  # synthetic (a test card, a 555 number)
    ids = await write(sessions, keys, [record("a", value=card), record("b", value=phone), record("c")])
    auditor = Auditor(sessions, keys, actor="dpo@example.test")
    for written in ("4111111111111111", "4111-1111-1111-1111", " 4111 1111 1111 1111 "):
        assert await auditor.subject_records(written) == [ids[0]], written
    for written in ("+12125550100", "+1 (212) 555-0100", "+1.212.555.0100"):
        assert await auditor.subject_records(written) == [ids[1]], written
    assert await auditor.subject_records("JaneRoe@example.com") == [ids[2]]  # dots do not count either
    assert (await auditor.erase_subject("4111-1111-1111-1111", "erasure request 43")).erased == [ids[0]]


async def test_an_erased_subject_is_found_by_nothing_afterwards(sessions, keys):
    ids = await write(sessions, keys, [record("a"), record("b", value="john.doe@example.org"), record("c")])
    auditor = Auditor(sessions, keys, actor="dpo@example.test")
    assert await auditor.subject_records("  JANE.ROE@example.com ") == sorted([ids[0], ids[2]])
    result = await auditor.erase_subject(SUBJECT, "erasure request 42")
    assert result.erased == sorted([ids[0], ids[2]])
    assert await auditor.subject_records(SUBJECT) == []
    for record_id in (ids[0], ids[2]):
        row = await get_record(sessions, record_id)
        assert row.erased_at is not None and row.wrapped_key is None and row.original_request is None
        with pytest.raises(RecordErased):
            unseal(row, keys)
    assert b"john.doe" in unseal(await get_record(sessions, ids[1]), keys).original_request
    async with sessions() as session:
        raw = [r for r in (await session.execute(select(ExchangeRow))).scalars()]
    assert not any(SUBJECT.encode() in (r.target or "").encode() for r in raw)
    [action] = [r for r in raw if r.kind == "erase"]
    details = json.loads(unseal(action, keys).original_request)
    assert details["records"] == result.erased and details["reason"] == "erasure request 42"
    assert SUBJECT not in json.dumps(details)
    report = await verify_log(sessions, keys)
    assert report.ok and report.erased == 2


async def test_a_reveal_leaves_a_chained_record(sessions, keys):
    [record_id] = await write(sessions, keys, [record()])
    revealed = await Auditor(sessions, keys, actor="auditor@example.test").reveal(record_id, "ticket 7")
    assert SUBJECT.encode() in revealed.original_request
    [action] = await list_records(sessions, Filters(kind="reveal"))
    assert (action.client_id, action.target) == ("auditor@example.test", record_id)
    assert json.loads(unseal(await get_record(sessions, action.id), keys).original_request) == {"reason": "ticket 7"}
    assert await problems(sessions, keys) == []


async def test_retention_purges_payloads_and_deletes_old_records_and_the_chain_still_verifies(sessions, keys):
    ids = await write(sessions, keys, [record("old", age_days=40), record("middle", age_days=10), record("new")])
    auditor = Auditor(sessions, keys)
    now = datetime.now(UTC)
    payloads, records = await auditor.purge(now - timedelta(days=5), now - timedelta(days=30))
    assert (payloads, records) == (1, 1)
    assert await get_record(sessions, ids[0]) is None
    middle = await get_record(sessions, ids[1])
    assert middle.payload_purged_at is not None and middle.original_request is None
    assert b"new" in unseal(await get_record(sessions, ids[2]), keys).original_request
    async with sessions() as session:
        indexed = set((await session.execute(select(SubjectIndexRow.record_id))).scalars())
    assert indexed == {ids[2]}
    report = await verify_log(sessions, keys)
    assert report.ok and report.purged == 1


async def test_an_auditor_purging_its_own_chain_leaves_a_chain_that_verifies(sessions, keys):
    """The purge moves the base of the auditor's own chain, then appends its record of the purge
    in the same transaction: the append must read the moved base (it once read the stored one and
    wrote a head MAC that no longer matched the row)."""
    auditor = Auditor(sessions, keys)
    await auditor.record_action("reveal", None, {"reason": "ticket 1"})
    await auditor.record_action("reveal", None, {"reason": "ticket 2"})
    assert await auditor.purge(None, datetime.now(UTC) + timedelta(seconds=5)) == (0, 2)
    report = await verify_log(sessions, keys)
    assert report.ok, report.problems


async def test_write_only_mode_cannot_be_read_without_the_private_key(sessions):
    private = AuditorPrivateKey.generate()
    proxy_keys = KeyAccess(Keyring.with_key(os.urandom(32)), AuditorPublicKey.from_text(private.public_text()))
    [record_id] = await write(sessions, proxy_keys, [record()])
    row = await get_record(sessions, record_id)
    assert row.key_id == private.key_id
    with pytest.raises(UnknownKey):
        unseal(row, proxy_keys)  # the proxy itself cannot read its history
    with pytest.raises(Exception):  # noqa: B017 - another auditor's key does not open it either
        unseal(row, KeyAccess(proxy_keys.keyring, auditor_private=AuditorPrivateKey.generate()))
    auditor_keys = KeyAccess(proxy_keys.keyring, auditor_private=private)
    assert SUBJECT.encode() in unseal(row, auditor_keys).original_request
    assert (await verify_log(sessions, proxy_keys)).sealed_unchecked == 1
    assert (await verify_log(sessions, auditor_keys)).ok


async def test_replicas_write_their_own_chains_concurrently(sessions, keys):
    import asyncio

    await asyncio.gather(
        *(write(sessions, keys, [record(f"{w}-{i}") for i in range(5)], f"proxy-{w}") for w in range(3))
    )
    report = await verify_log(sessions, keys)
    assert report.ok and (report.records, report.writers) == (15, 3)


async def test_metadata_filters(sessions, keys):
    await write(sessions, keys, [record("x"), record("y", value=None)])
    assert len(await list_records(sessions, Filters(entity="EMAIL_ADDRESS"))) == 1
    assert len(await list_records(sessions, Filters(client="team-a"))) == 2
    assert await list_records(sessions, Filters(client="nobody")) == []
    assert len(await list_records(sessions, Filters(since=datetime.now(UTC) - timedelta(hours=1), status=200))) == 2
    async with sessions.begin() as session:
        await session.execute(update(ExchangeRow).values(model="other"))
    assert await list_records(sessions, Filters(model="gpt-4o-mini")) == []


async def test_moving_a_chain_head_or_faking_an_erasure_is_caught(sessions, keys):
    """Found in review: the head could be moved back over deleted rows, and a row marked purged
    skipped its payload check."""
    ids = await write(sessions, keys, [record(f"r{i}") for i in range(3)])
    async with sessions.begin() as session:
        last = await session.get(ExchangeRow, ids[2])
        previous = await session.get(ExchangeRow, ids[1])
        chain = (await session.execute(select(ChainRow))).scalar_one()
        await session.delete(last)
        chain.head_seq, chain.head_hash = previous.seq, previous.chain_hash  # hide the deletion
        previous.payload_purged_at = datetime.now(UTC)  # pretend a purge, keep the payload
    found = await problems(sessions, keys)
    assert any("head or base was edited" in p for p in found)
    assert any("still holds a key or payload" in p for p in found)
    with pytest.raises(RecordErased):
        unseal(await get_record(sessions, ids[1]), keys)
