"""Shared fixtures: one real detector for the session, a fake upstream and a proxy per test.

Everything is real (Presidio + spaCy, SQLite, HTTP over loopback) except the hosted LLM.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from config import Settings, load_settings
from proxy.app import create_app
from proxy.state import STATE, ProxyState, detector_config
from redaction import DetectorPool
from storage import ExchangeRecord, ExchangeRow, Keyring, make_engine, unseal, upgrade_schema
from tests.fake_upstream import FakeUpstream

POSTGRES_URL = os.environ.get("PRIVACY_PROXY_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("PRIVACY_PROXY_REQUIRE_POSTGRES") == "1"


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The log database on each backend: a SQLite file, and a fresh PostgreSQL database.

    PostgreSQL needs a server: ``.ci/postgres.sh`` starts one (CI sets REQUIRE_POSTGRES, so there
    the tests fail rather than skip when it is missing).
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'log.db'}"
        return
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("PRIVACY_PROXY_TEST_POSTGRES_URL is not set")
        pytest.skip("no PostgreSQL server (set PRIVACY_PROXY_TEST_POSTGRES_URL; .ci/postgres.sh starts one)")
    name = f"privacy_proxy_test_{secrets.token_hex(6)}"
    admin_dsn = POSTGRES_URL.replace("+asyncpg", "")
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The log database on each backend, its schema migrated to this version."""
    engine = make_engine(database_url)
    await upgrade_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def detector() -> AsyncIterator[DetectorPool]:
    """The real Presidio detector (one worker process), loaded once for the whole session."""
    pool = DetectorPool(detector_config(Settings()), workers=1, timeout=60)
    await pool.start()
    yield pool
    await pool.close()


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class Upstream:
    fake: FakeUpstream
    url: str  # base URL, ending in /v1


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    fake = FakeUpstream()
    runner, url = await _serve(fake.app())
    yield Upstream(fake, f"{url}/v1")
    if fake.release is not None:
        fake.release.set()
    await runner.cleanup()


@dataclass
class Proxy:
    url: str  # http://127.0.0.1:PORT
    app: web.Application
    settings: Settings

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def state(self) -> ProxyState:
        return self.app[STATE]

    async def records(self) -> list[ExchangeRecord]:
        """Every logged exchange, decrypted, oldest first (waits for pending writes)."""
        assert self.state.writer is not None
        await self.state.writer.wait_idle()
        engine = make_engine(self.settings.database_url)
        try:
            async with async_sessionmaker(engine)() as session:
                rows = (await session.execute(select(ExchangeRow).order_by(ExchangeRow.id))).scalars().all()
        finally:
            await engine.dispose()
        keyring = load_test_keyring(self.settings)
        return [unseal(row, keyring) for row in rows]

    def database_file(self) -> Path:
        return Path(self.settings.database_url.split("///", 1)[1])


def load_test_keyring(settings: Settings) -> Keyring:
    from storage import load_keyring

    return load_keyring(None, settings.encryption_key_file)


MakeProxy = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def make_proxy(
    detector: DetectorPool, upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MakeProxy]:
    """Start a proxy in front of ``upstream`` with settings overrides; stopped after the test."""
    for name in list(__import__("os").environ):
        if name.startswith("PRIVACY_PROXY_"):
            monkeypatch.delenv(name)
    runners: list[web.AppRunner] = []

    async def start(detector_pool: DetectorPool | None = detector, **overrides: Any) -> Proxy:
        values: dict[str, Any] = {
            "upstream": upstream.url,
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'log.db'}",
            "encryption_key_file": tmp_path / "log.key",
            # a log process per test would cost a spawn each: tests that need it ask for it
            "log_process": False,
            **overrides,
        }
        settings = load_settings(None, **values)
        app = create_app(settings, detector=detector_pool)
        runner, url = await _serve(app)
        runners.append(runner)
        return Proxy(url, app, settings)

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def proxy(make_proxy: MakeProxy) -> Proxy:
    return await make_proxy()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
