"""``privacy-proxy audit verify``: the chain of every writer, and the decryptability of every record.

Reports edited rows (metadata or ciphertext), deleted rows (gaps, a missing tail or a missing
chain), reordered rows, ciphertext moved between rows, and records whose key is gone. Erased and
purged records are counted, not reported: their chain still verifies.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from storage.chain import GENESIS, head_mac, link, payload_digest, payloads_present
from storage.crypto import DecryptionFailed, UnknownKey
from storage.envelope import AUDITOR_PREFIX, KeyAccess
from storage.log_keys import load_log_secrets
from storage.models import ENCRYPTED_COLUMNS, ChainRow, ExchangeRow
from storage.records import RecordErased, unseal

PAGE = 1000


@dataclass
class VerifyReport:
    records: int = 0
    writers: int = 0
    erased: int = 0
    purged: int = 0
    sealed_unchecked: int = 0  # write-only records, no private key given
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _WriterState:
    chain: ChainRow | None
    expected_seq: int
    previous: bytes
    last_seq: int
    last_hash: bytes


async def verify_log(
    sessions: async_sessionmaker, keys: KeyAccess, progress: Callable[[int], None] | None = None
) -> VerifyReport:
    report = VerifyReport()
    chain_key = (await load_log_secrets(sessions, keys.keyring)).chain_key
    async with sessions() as session:
        chains = {c.writer_id: c for c in (await session.execute(select(ChainRow))).scalars()}
        writers: dict[str, _WriterState] = {}
        query = select(ExchangeRow).order_by(ExchangeRow.writer_id, ExchangeRow.seq).execution_options(yield_per=PAGE)
        async for row in await session.stream_scalars(query):
            state = writers.get(row.writer_id)
            if state is None:
                chain = chains.get(row.writer_id)
                if chain is None:
                    report.problems.append(f"writer {row.writer_id}: its chain head is missing (deleted?)")
                base_seq, base_hash = (0, GENESIS) if chain is None else (chain.base_seq, chain.base_hash)
                state = writers[row.writer_id] = _WriterState(chain, base_seq + 1, base_hash, base_seq, base_hash)
            _check_row(row, state, chain_key, keys, report)
            report.records += 1
            if progress is not None:
                progress(1)
        for writer_id, chain in chains.items():
            expected = head_mac(chain_key, chain)
            if not hmac.compare_digest(expected, chain.mac or b""):
                report.problems.append(f"writer {writer_id}: its chain head or base was edited")
            state = writers.get(writer_id)
            if state is None:
                if chain.head_seq > chain.base_seq:
                    report.problems.append(
                        f"writer {writer_id}: records {chain.base_seq + 1}..{chain.head_seq} are missing (deleted)"
                    )
                continue
            if (state.last_seq, state.last_hash) != (chain.head_seq, chain.head_hash):
                if state.last_seq < chain.head_seq:
                    report.problems.append(
                        f"writer {writer_id}: records {state.last_seq + 1}..{chain.head_seq} are missing (deleted)"
                    )
                elif state.last_seq == chain.head_seq:
                    report.problems.append(f"writer {writer_id}: the chain's last record does not match its head")
                # rows past the head: written after the head was read (a live log); their links were checked
    report.writers = len(writers)
    return report


def _check_row(row: ExchangeRow, state: _WriterState, chain_key: bytes, keys: KeyAccess, report: VerifyReport) -> None:
    where = f"record {row.id} (writer {row.writer_id}, #{row.seq})"
    if row.seq > state.expected_seq:
        report.problems.append(
            f"writer {row.writer_id}: records {state.expected_seq}..{row.seq - 1} are missing (deleted)"
        )
    elif row.seq < state.expected_seq:
        report.problems.append(f"{where}: sequence number out of place (reordered)")
    present = payloads_present(row)
    if not present and (row.wrapped_key is not None or any(getattr(row, c) is not None for c in ENCRYPTED_COLUMNS)):
        report.problems.append(f"{where}: marked erased or purged but still holds a key or payload (forged)")
    if present and payload_digest(row) != row.payload_digest:
        report.problems.append(f"{where}: encrypted payload changed or moved from another record")
    if link(chain_key, state.previous, row) != row.chain_hash:
        report.problems.append(f"{where}: content edited, or records reordered or removed before it")
    if row.erased_at is not None:
        report.erased += 1
    elif row.payload_purged_at is not None:
        report.purged += 1
    elif present:
        _check_decrypts(row, keys, where, report)
    # continue from the stored link, so one edited row is reported once, not for the rest of the chain
    state.previous = row.chain_hash
    state.expected_seq = max(state.expected_seq, row.seq + 1)
    state.last_seq, state.last_hash = row.seq, row.chain_hash


def _check_decrypts(row: ExchangeRow, keys: KeyAccess, where: str, report: VerifyReport) -> None:
    if row.key_id and row.key_id.startswith(AUDITOR_PREFIX) and keys.auditor_private is None:
        report.sealed_unchecked += 1
        return
    try:
        unseal(row, keys)
    except UnknownKey:
        report.problems.append(f"{where}: cannot be decrypted, key {row.key_id} is not configured")
    except RecordErased:
        report.problems.append(f"{where}: holds payloads but no data key (key removed outside an erasure)")
    except DecryptionFailed:
        report.problems.append(f"{where}: a payload does not decrypt (tampered, or moved from another record)")


async def count_records(sessions: async_sessionmaker) -> int:
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(ExchangeRow))).scalar_one()
