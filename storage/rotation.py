"""Master-key rotation: rewrap every data key and log secret with the active key.

Payloads are never decrypted or rewritten: only the 60-byte wrapped data keys change, so a
rotation costs the same for a short and a long exchange. A record whose key is not configured
is reported and left as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.crypto import DecryptionFailed, Keyring, UnknownKey
from storage.envelope import AUDITOR_PREFIX, data_key_aad
from storage.log_keys import rewrap_log_secrets
from storage.models import ExchangeRow, LogSecretRow

BATCH = 500


@dataclass
class RotationReport:
    rewrapped: int = 0
    secrets: int = 0
    unreadable: list[str] = field(default_factory=list)  # record ids whose key is missing or wrong


async def keys_in_use(sessions: async_sessionmaker) -> dict[str, int]:
    """How many records (and log secrets) each master or auditor key id still protects."""
    async with sessions() as session:
        query = select(ExchangeRow.key_id, func.count()).where(ExchangeRow.wrapped_key.is_not(None))
        counts = {key_id: n for key_id, n in (await session.execute(query.group_by(ExchangeRow.key_id))).all()}
        for key_id in (await session.execute(select(LogSecretRow.key_id))).scalars():
            counts[key_id] = counts.get(key_id, 0) + 1
    return counts


async def rewrap_all(
    sessions: async_sessionmaker, keyring: Keyring, progress: Callable[[int], None] | None = None
) -> RotationReport:
    report = RotationReport()
    async with sessions.begin() as session:
        report.secrets = await rewrap_log_secrets(session, keyring)
    stale = (
        select(ExchangeRow.id, ExchangeRow.key_id, ExchangeRow.wrapped_key)
        .where(
            ExchangeRow.key_id.is_not(None),
            ExchangeRow.key_id != keyring.active_id,
            ExchangeRow.wrapped_key.is_not(None),
            ~ExchangeRow.key_id.startswith(AUDITOR_PREFIX),
        )
        .order_by(ExchangeRow.id)
    )
    after = ""
    while True:
        async with sessions.begin() as session:
            batch = (await session.execute(stale.where(ExchangeRow.id > after).limit(BATCH))).all()
            if not batch:
                break
            changes = []
            for record_id, key_id, wrapped in batch:
                try:
                    data_key = keyring.decrypt(key_id, wrapped, data_key_aad(record_id))
                except (UnknownKey, DecryptionFailed):
                    report.unreadable.append(record_id)
                    continue
                rewrapped = keyring.encrypt(data_key, data_key_aad(record_id))
                changes.append({"rid": record_id, "old": key_id, "wrapped": rewrapped, "new": keyring.active_id})
            if changes:
                # one executemany; only rows still wrapped under the key read above (an erasure that
                # committed meanwhile must not get its data key back)
                table = ExchangeRow.__table__
                await session.execute(
                    update(table)
                    .where(table.c.id == bindparam("rid"), table.c.key_id == bindparam("old"))
                    .where(table.c.wrapped_key.is_not(None))
                    .values(wrapped_key=bindparam("wrapped"), key_id=bindparam("new")),
                    changes,
                )
            report.rewrapped += len(changes)
            after = batch[-1][0]
        if progress is not None:
            progress(len(batch))
    return report
