"""Throughput of the audit log, and what `audit verify` and `keys rotate` cost, per backend.

Writes N realistic records (2 KB request, its sanitized copy, 2 KB answer, 3 detected values)
through the proxy's own LogWriter (envelope encryption, chain, blind index, batched commits; SQLite
through the synchronous driver, as the log process writes it) as fast as they can be submitted,
then verifies the whole log and rewraps every data key. First, the CPU time of a transaction
holding a single record: what a lightly loaded proxy pays per exchange.

Usage: python bench/log_store.py [--records 10000] [--database-url URL]
       (default: a SQLite file in a temporary directory; or an EMPTY PostgreSQL database:
       postgresql+asyncpg://user@host/dbname)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.ext.asyncio import async_sessionmaker

from storage import (
    ChainAppender,
    ExchangeRecord,
    KeyAccess,
    Keyring,
    LogWriter,
    make_engine,
    new_record_id,
    upgrade_schema,
)
from storage.database import make_sync_writer_engine
from storage.rotation import rewrap_all
from storage.verify import verify_log

PROMPT = ("Please summarise the meeting notes for Jane Roe and send them to jane.roe@example.com. " * 24)[:2048]


def record(number: int) -> ExchangeRecord:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}).encode()
    return ExchangeRecord(
        id=new_record_id(),
        client_id=f"team-{number % 4}",
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini",
        status=200,
        entity_counts={"PERSON": 1, "EMAIL_ADDRESS": 1},
        original_request=body,
        sanitized_request=body.replace(b"Jane Roe", b"<PERSON_1>"),
        response=body,
        mapping={
            "<PERSON_1>": {"value": "Jane Roe", "type": "PERSON"},
            "<EMAIL_ADDRESS_1>": {"value": "jane.roe@example.com", "type": "EMAIL_ADDRESS"},
            "<PERSON_2>": {"value": f"Person {number}", "type": "PERSON"},
        },
    )


async def measure(url: str, count: int) -> dict[str, float]:
    engine = make_engine(url)
    await upgrade_schema(engine)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    keys = KeyAccess(Keyring.with_key(os.urandom(32)))
    sync_engine = make_sync_writer_engine(url)  # as the log process writes (SQLite; None for PostgreSQL)
    appender = ChainAppender(sessions, keys, f"bench-{os.getpid()}", sync_engine)
    single = count // 50
    began = time.process_time()  # every thread of this process (aiosqlite runs one)
    for n in range(single):
        await appender.append([record(n)])
    single_cpu = (time.process_time() - began) / single
    count -= single
    writer = LogWriter(appender, queue_size=count + 1)
    records = [record(n) for n in range(count)]
    writer.start()
    began = time.perf_counter()
    for item in records:
        writer.submit(item)
    await writer.wait_idle()
    write_seconds = time.perf_counter() - began
    await writer.close(10)
    began = time.perf_counter()
    report = await verify_log(sessions, keys)
    verify_seconds = time.perf_counter() - began
    assert report.ok and report.records == count + single, report.problems[:3]
    rotated = Keyring.with_key(os.urandom(32), *keys.keyring.keys.values())
    began = time.perf_counter()
    rotation = await rewrap_all(sessions, rotated)
    rotate_seconds = time.perf_counter() - began
    assert rotation.rewrapped == count + single
    await engine.dispose()
    if sync_engine is not None:
        sync_engine.dispose()
    per_10k = 10_000 / (count + single)
    return {
        "single_record_transaction_cpu_ms": single_cpu * 1000,
        "records_per_second": count / write_seconds,
        "verify_seconds_per_10k": verify_seconds * per_10k,
        "rotate_seconds_per_10k": rotate_seconds * per_10k,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite+aiosqlite:///{directory}/bench.db"
        result = asyncio.run(measure(url, args.records))
    backend = url.split(":", 1)[0]
    print(f"{backend}, {args.records} records of ~6 KB (request, sanitized copy, answer, 3 values)")
    print(f"  one record per transaction: {result['single_record_transaction_cpu_ms']:6.2f} ms CPU each")
    print(f"  written:  {result['records_per_second']:8.0f} records/s (encrypt + chain + index + commit)")
    print(f"  verify:   {result['verify_seconds_per_10k']:8.2f} s per 10,000 records (chain + decrypt every record)")
    print(f"  rotate:   {result['rotate_seconds_per_10k']:8.2f} s per 10,000 records (rewrap data keys only)")


if __name__ == "__main__":
    main()
