"""The log's own secrets: the chain MAC key and the blind-index key.

Both are random, created once per database and stored wrapped by the active master key (rewrapped
by ``keys rotate``), so every replica and the audit command share them without another setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.crypto import KEY_BYTES, Keyring, associated_data
from storage.models import LogSecretRow

SECRET_NAMES = ("chain", "index")


@dataclass(frozen=True)
class LogSecrets:
    chain_key: bytes
    index_key: bytes


def _aad(name: str) -> bytes:
    return associated_data("log_secrets", name, "wrapped")


async def _read(session: AsyncSession, keyring: Keyring) -> dict[str, bytes]:
    rows = (await session.execute(select(LogSecretRow))).scalars().all()
    return {row.name: keyring.decrypt(row.key_id, row.wrapped, _aad(row.name)) for row in rows}


async def load_log_secrets(sessions: async_sessionmaker, keyring: Keyring) -> LogSecrets:
    """Read the secrets, creating the missing ones (two replicas racing: the first insert wins)."""
    async with sessions() as session:
        found = await _read(session, keyring)
    missing = [name for name in SECRET_NAMES if name not in found]
    if missing:
        try:
            async with sessions.begin() as session:
                for name in missing:
                    wrapped = keyring.encrypt(os.urandom(KEY_BYTES), _aad(name))
                    session.add(LogSecretRow(name=name, key_id=keyring.active_id, wrapped=wrapped))
        except IntegrityError:
            pass  # another process created them first: use theirs
        async with sessions() as session:
            found = await _read(session, keyring)
    return LogSecrets(chain_key=found["chain"], index_key=found["index"])


async def rewrap_log_secrets(session: AsyncSession, keyring: Keyring) -> int:
    """Wrap every secret with the active master key; how many changed."""
    changed = 0
    for row in (await session.execute(select(LogSecretRow))).scalars().all():
        if row.key_id != keyring.active_id:
            secret = keyring.decrypt(row.key_id, row.wrapped, _aad(row.name))
            row.wrapped, row.key_id = keyring.encrypt(secret, _aad(row.name)), keyring.active_id
            changed += 1
    return changed
