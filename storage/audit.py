"""What the audit command does to the log: list, reveal, erase, purge; every action is itself
appended to the chained log (who, when, why; never a value)."""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import defer

from storage.blind_index import subject_digests
from storage.chain import head_mac
from storage.envelope import KeyAccess
from storage.log_keys import LogSecrets
from storage.models import ENCRYPTED_COLUMNS, ChainRow, ExchangeRow, SubjectIndexRow
from storage.records import ExchangeRecord, RecordErased, new_record_id, unseal
from storage.writer import ChainAppender


@dataclass(frozen=True)
class Filters:
    """Which records: every field optional; ``kind`` None means exchanges and audit actions."""

    since: datetime | None = None
    until: datetime | None = None
    client: str | None = None
    model: str | None = None
    status: int | None = None
    entity: str | None = None
    kind: str | None = "exchange"
    ids: tuple[str, ...] = ()

    def apply(self, query: Select) -> Select:
        conditions = []
        if self.since is not None:
            conditions.append(ExchangeRow.created_at >= self.since)
        if self.until is not None:
            conditions.append(ExchangeRow.created_at < self.until)
        if self.client is not None:
            conditions.append(ExchangeRow.client_id == self.client)
        if self.model is not None:
            conditions.append(ExchangeRow.model == self.model)
        if self.status is not None:
            conditions.append(ExchangeRow.status == self.status)
        if self.kind is not None:
            conditions.append(ExchangeRow.kind == self.kind)
        if self.ids:
            conditions.append(ExchangeRow.id.in_(self.ids))
        return query.where(*conditions)

    def keeps(self, row: ExchangeRow) -> bool:
        """Entity-type filter (a JSON column: checked in Python, portable across backends)."""
        return self.entity is None or (row.entity_counts or {}).get(self.entity, 0) > 0


def metadata_only(query: Select) -> Select:
    return query.options(*(defer(getattr(ExchangeRow, column)) for column in ENCRYPTED_COLUMNS))


async def list_records(sessions: async_sessionmaker, filters: Filters, limit: int | None = None) -> list[ExchangeRow]:
    """Metadata of matching records, oldest first; payloads are not even read."""
    query = metadata_only(filters.apply(select(ExchangeRow)).order_by(ExchangeRow.created_at, ExchangeRow.id))
    async with sessions() as session:
        rows = [row for row in (await session.execute(query)).scalars() if filters.keeps(row)]
    return rows[:limit] if limit is not None else rows


async def get_record(sessions: async_sessionmaker, record_id: str) -> ExchangeRow | None:
    async with sessions() as session:
        return await session.get(ExchangeRow, record_id)


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


@dataclass
class EraseResult:
    erased: list[str]
    already: list[str]


class Auditor:
    """One audit session: its actions go to its own chain (one writer per command run)."""

    def __init__(self, sessions: async_sessionmaker, keys: KeyAccess, actor: str | None = None) -> None:
        self.sessions = sessions
        self.keys = keys
        self.actor = actor or default_actor()
        writer_id = f"audit-{socket.gethostname()[:30]}-{os.getpid()}-{secrets.token_hex(4)}"
        self._chain = ChainAppender(sessions, keys, writer_id)

    async def log_secrets(self) -> LogSecrets:
        return await self._chain.secrets()

    async def record_action(
        self, kind: str, target: str | None, details: dict, session: AsyncSession | None = None
    ) -> str:
        """Append an audit action; ``details`` (reason, ids, counts) is stored encrypted. With
        ``session`` it commits together with the action it records."""
        record = ExchangeRecord(
            id=new_record_id(),
            client_id=self.actor[:128],
            endpoint=f"audit/{kind}",
            kind=kind,
            target=target,
            training_consent=False,
            original_request=json.dumps(details, ensure_ascii=False).encode(),
        )
        await self._chain.append([record], session)
        return record.id

    async def reveal(self, record_id: str, reason: str) -> ExchangeRecord:
        """Decrypt a record's originals; the reveal is logged first, so no reveal goes unrecorded."""
        row = await get_record(self.sessions, record_id)
        if row is None:
            raise LookupError(f"no record {record_id}")
        if row.wrapped_key is None:
            raise RecordErased(f"record {record_id} was erased or its payloads purged: nothing to reveal")
        await self.record_action("reveal", record_id, {"reason": reason})
        return unseal(row, self.keys)

    async def subject_records(self, value: str) -> list[str]:
        digests = subject_digests((await self.log_secrets()).index_key, value)
        async with self.sessions() as session:
            query = select(SubjectIndexRow.record_id).where(SubjectIndexRow.digest.in_(digests)).distinct()
            return sorted((await session.execute(query)).scalars())

    async def erase(self, record_ids: Sequence[str], reason: str, *, subject: bool = False) -> EraseResult:
        """Crypto-shred: the data key and the ciphertexts go, metadata and chain stay (so ``verify``
        still proves nothing else changed). Logged with the ids and the reason, never the value."""
        now = datetime.now(UTC)
        await self.log_secrets()  # before the transaction: loading them may need a write of its own
        async with self.sessions.begin() as session:
            found: dict[str, datetime | None] = {}
            for start in range(0, len(record_ids), 500):  # bounded IN lists (driver parameter limits)
                query = select(ExchangeRow.id, ExchangeRow.erased_at).where(
                    ExchangeRow.id.in_(list(record_ids[start : start + 500]))
                )
                found.update({record_id: erased for record_id, erased in (await session.execute(query)).all()})
            to_erase = [record_id for record_id, erased_at in found.items() if erased_at is None]
            await _shred(session, to_erase, erased_at=now)
            result = EraseResult(erased=sorted(to_erase), already=sorted(set(found) - set(to_erase)))
            details = {"reason": reason, "records": result.erased, "by": "subject" if subject else "id"}
            target = result.erased[0] if len(result.erased) == 1 else None
            await self.record_action("erase", target, details, session)  # commits with the erasure
        return result

    async def erase_subject(self, value: str, reason: str) -> EraseResult:
        return await self.erase(await self.subject_records(value), reason, subject=True)

    async def purge(self, payloads_before: datetime | None, records_before: datetime | None) -> tuple[int, int]:
        """Retention: destroy payloads older than one date, delete whole records older than another.

        Deleting records cuts each writer's chain at the front only (a prefix of its rows); the
        chain's base moves there, so ``verify`` still checks everything that remains."""
        payloads = records = 0
        now = datetime.now(UTC)
        chain_key = (await self.log_secrets()).chain_key
        async with self.sessions.begin() as session:
            if records_before is not None:
                records = await _delete_chain_prefixes(session, records_before, chain_key)
            if payloads_before is not None:
                query = select(ExchangeRow.id).where(
                    ExchangeRow.created_at < payloads_before,
                    ExchangeRow.kind == "exchange",
                    ExchangeRow.erased_at.is_(None),
                    ExchangeRow.payload_purged_at.is_(None),
                )
                ids = list((await session.execute(query)).scalars())
                await _shred(session, ids, payload_purged_at=now)
                payloads = len(ids)
            if payloads or records:  # a no-op purge (the proxy runs one every interval) is not recorded
                details = {"payloads_before": _iso(payloads_before), "records_before": _iso(records_before),
                           "payloads_purged": payloads, "records_deleted": records}  # fmt: skip
                await self.record_action("purge", None, details, session)  # commits with the purge
        return payloads, records


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def _shred(session: AsyncSession, record_ids: list[str], **stamp: datetime) -> None:
    for start in range(0, len(record_ids), 500):
        chunk = record_ids[start : start + 500]
        cleared = dict.fromkeys((*ENCRYPTED_COLUMNS, "key_id", "wrapped_key"))
        await session.execute(update(ExchangeRow).where(ExchangeRow.id.in_(chunk)).values(**cleared, **stamp))
        await session.execute(delete(SubjectIndexRow).where(SubjectIndexRow.record_id.in_(chunk)))


async def _delete_chain_prefixes(session: AsyncSession, before: datetime, chain_key: bytes) -> int:
    deleted = 0
    for chain in (await session.execute(select(ChainRow).with_for_update())).scalars().all():
        # the first row of this writer that is recent enough: everything before it goes
        first_kept = (
            await session.execute(
                select(func.min(ExchangeRow.seq)).where(
                    ExchangeRow.writer_id == chain.writer_id, ExchangeRow.created_at >= before
                )
            )
        ).scalar()
        last_deleted = chain.head_seq if first_kept is None else first_kept - 1
        if last_deleted <= chain.base_seq:
            continue
        cut = (
            await session.execute(
                select(ExchangeRow.chain_hash).where(
                    ExchangeRow.writer_id == chain.writer_id, ExchangeRow.seq == last_deleted
                )
            )
        ).scalar()
        if cut is None:
            continue  # that row is already missing: leave the gap for verify to report
        doomed = select(ExchangeRow.id).where(ExchangeRow.writer_id == chain.writer_id, ExchangeRow.seq <= last_deleted)
        await session.execute(delete(SubjectIndexRow).where(SubjectIndexRow.record_id.in_(doomed)))
        result = await session.execute(
            delete(ExchangeRow).where(ExchangeRow.writer_id == chain.writer_id, ExchangeRow.seq <= last_deleted)
        )
        deleted += result.rowcount or 0
        chain.base_seq, chain.base_hash = last_deleted, cut
        chain.mac = head_mac(chain_key, chain)
    return deleted
