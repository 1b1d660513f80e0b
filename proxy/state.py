"""The long-lived parts of a running proxy: detector, upstream client, log writer, database."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from config import Settings
from proxy.exchange import Exchange
from proxy.metrics import Metrics
from proxy.routing import Router
from proxy.upstream import Upstream
from redaction import (
    STRUCTURED_TYPES,
    DetectorConfig,
    DetectorPool,
    NoDetector,
    PlaceholderStore,
    PlaceholderVault,
    Redactor,
    ResponseDetector,
    ResponsePolicy,
    TermLists,
)
from storage import (
    AuditorPublicKey,
    KeyAccess,
    LogWriter,
    SchemaError,
    create_schema,
    load_keyring,
    make_engine,
    touch_heartbeat,
)
from storage.audit import Auditor
from storage.writer import Appender, ChainAppender
from storage.writer_process import AppenderSpec, ProcessAppender

log = logging.getLogger(__name__)

READINESS_DB_TIMEOUT = 2.0


def detector_config(settings: Settings) -> DetectorConfig:
    return DetectorConfig(
        spacy_model=settings.spacy_model,
        entities=tuple(settings.entities),
        excluded_entities=tuple(settings.excluded_entities),
        score_threshold=settings.score_threshold,
        entity_thresholds=dict(settings.entity_thresholds),
        response_types=tuple(sorted(_detector_response_types(settings))),
    )


def _detector_response_types(settings: Settings) -> set[str]:
    """The response guard's types that no pattern finds, over every upstream."""
    types = {*settings.response_redact_types, *settings.response_block_types}
    for upstream in settings.upstreams.values():
        types |= {*(upstream.response_redact_types or ()), *(upstream.response_block_types or ())}
    return types - set(STRUCTURED_TYPES)


@dataclass
class ProxyState:
    settings: Settings
    detector: DetectorPool
    owns_detector: bool = True
    router: Router = field(init=False)
    redactor: Redactor = field(init=False)
    engine: AsyncEngine | None = None
    writer: LogWriter | None = None
    _storage_ok: bool = False
    # one chain per process run: containers all run as pid 1, hence the random part
    writer_id: str = field(default_factory=lambda: f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}")
    _detector_start: asyncio.Task[None] | None = None
    _sweeper: asyncio.Task[None] | None = None
    _retention: asyncio.Task[None] | None = None
    _policies: dict[str, ResponsePolicy] = field(default_factory=dict)

    # set when shutdown begins: an exchange cancelled from then on was cut by the proxy, not its client
    stopping: bool = False
    # the tasks relaying streams: cut with an in-band error before shutdown_timeout runs out
    streams: set[asyncio.Task] = field(default_factory=set)

    vault: PlaceholderVault = field(init=False)
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self)
        self.vault = PlaceholderVault(self.settings.placeholder_ttl, self.settings.placeholder_max_entries)
        self.router = Router(self.settings)
        self.redactor = Redactor(
            self.detector,
            TermLists.build(self.settings.allow_list, self.settings.deny_list),
            block_uninspectable=self.settings.non_text_content == "block",
            max_chars=self.settings.max_inspected_chars,
        )

    @property
    def storage_ok(self) -> bool:
        """The schema exists and the last write (record or readiness probe) succeeded."""
        return self._storage_ok and (self.writer is None or self.writer.healthy)

    @classmethod
    def from_settings(cls, settings: Settings, detector: DetectorPool | None = None) -> ProxyState:
        if detector is not None:
            return cls(settings, detector, owns_detector=False)
        if settings.detection == "off":
            return cls(settings, NoDetector())  # type: ignore[arg-type]
        pool = DetectorPool(
            detector_config(settings),
            settings.detector_workers,
            settings.detection_timeout,
            cache_entries=settings.detection_cache_entries,
        )
        return cls(settings, pool)

    async def open(self) -> None:
        """Open everything; the detector loads in the background (``/readyz`` says when it is warm)."""
        keyring = load_keyring(
            self.settings.encryption_key.get_secret_value() if self.settings.encryption_key else None,
            self.settings.encryption_key_file,
        )
        self.engine = make_engine(self.settings.database_url)
        sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        try:
            await create_schema(self.engine, migrate=self.settings.database_migrate)
            self._storage_ok = True
        except SchemaError as exc:
            log.error("log database: %s", exc)
        except Exception as exc:
            log.error(
                "log database unavailable at start (%s); requests that must be logged get 503", type(exc).__name__
            )
        auditor = self.settings.auditor_public_key
        keys = KeyAccess(keyring, AuditorPublicKey.from_text(auditor) if auditor else None)
        appender: Appender
        if self.settings.log_process:
            spec = AppenderSpec(self.settings.database_url, keyring, auditor, self.writer_id)
            appender = ProcessAppender(spec)
        else:
            appender = ChainAppender(sessions, keys, self.writer_id)
        self.writer = LogWriter(
            appender,
            queue_size=self.settings.log_queue_size,
            queue_bytes=self.settings.log_queue_bytes,
            attempts=self.settings.log_write_attempts,
            flush_interval=self.settings.log_flush_interval,
        )
        self.writer.start()
        self._sessions = sessions
        self._keys = keys
        await self.router.open()
        if self.owns_detector:
            self._detector_start = asyncio.create_task(self._start_detector())
        self._sweeper = asyncio.create_task(self._sweep_placeholders())
        if self.settings.retention_payload_days or self.settings.retention_metadata_days:
            self._retention = asyncio.create_task(self._retention_loop())

    async def _retention_loop(self) -> None:
        while True:
            await self.enforce_retention()
            await asyncio.sleep(self.settings.retention_interval)

    async def enforce_retention(self) -> tuple[int, int]:
        """Destroy payloads and delete records past their retention (an audited purge)."""
        now = datetime.now(UTC)
        payload_days, record_days = self.settings.retention_payload_days, self.settings.retention_metadata_days
        try:
            payloads, records = await Auditor(self._sessions, self._keys, actor="privacy-proxy retention").purge(
                None if payload_days is None else now - timedelta(days=payload_days),
                None if record_days is None else now - timedelta(days=record_days),
            )
        except Exception as exc:
            log.error(
                "retention purge failed (%s); retrying in %gs", type(exc).__name__, self.settings.retention_interval
            )
            return 0, 0
        if payloads or records:
            log.info("retention: %d payload(s) destroyed, %d record(s) deleted", payloads, records)
        return payloads, records

    async def _sweep_placeholders(self) -> None:
        """Forget expired placeholder values even of clients that never come back."""
        interval = min(60.0, self.settings.placeholder_ttl / 4)
        while True:
            await asyncio.sleep(interval)
            self.vault.sweep()

    async def _start_detector(self) -> None:
        try:
            await self.detector.start()
        except Exception as exc:
            log.error("detector failed to start: %s", exc)

    async def close(self) -> None:
        if self._detector_start is not None and not self._detector_start.done():
            self._detector_start.cancel()
        for task in (self._sweeper, self._retention):
            if task is not None:
                task.cancel()
        if self.writer is not None:
            await self.writer.close(self.settings.log_drain_timeout)
        await self.router.close()
        if self.owns_detector:
            await self.detector.close()
        if self.engine is not None:
            await self.engine.dispose()

    async def storage_writable(self) -> bool:
        try:
            async with asyncio.timeout(READINESS_DB_TIMEOUT):
                if not self._storage_ok and self.engine is not None:
                    await create_schema(self.engine)
                await touch_heartbeat(self._sessions, self.writer_id)
            if self.writer is not None:
                self.writer.healthy = True  # the database takes writes again
        except Exception as exc:
            log.warning("readiness: log database not writable (%s)", type(exc).__name__)
            self._storage_ok = False
            return False
        self._storage_ok = True
        return True

    def response_policy(self, target: Upstream) -> ResponsePolicy:
        """What the guard does with values in ``target``'s answers that the caller never sent."""
        policy = self._policies.get(target.name)
        if policy is None:
            policy = ResponsePolicy(
                tuple(target.response_redact_types),
                tuple(target.response_block_types),
                detect=ResponseDetector(self.detector, self.redactor.pseudonymizer.terms),
            )
            self._policies[target.name] = policy
        return policy

    def begin_shutdown(self) -> None:
        """Mark the proxy as stopping; streams still running when ``shutdown_timeout`` is nearly
        over are cut by the proxy, which tells their clients in-band (aiohttp would only close
        the connection, and an SDK would return a truncated answer as if it were whole)."""
        self.stopping = True
        timeout = self.settings.shutdown_timeout
        asyncio.get_running_loop().call_later(max(0.0, timeout - min(1.0, timeout / 4)), self._cut_streams)

    def _cut_streams(self) -> None:
        for task in list(self.streams):
            task.cancel()

    def placeholder_store(self, client_id: str) -> PlaceholderStore | None:
        """The client's placeholders across requests, or None when they live for one request."""
        if self.settings.placeholder_scope == "request":
            return None
        return self.vault.store_for(client_id)

    def record(self, exchange: Exchange) -> None:
        """Hand the finished exchange to the log writer (never blocks the response)."""
        if exchange.log_it and self.writer is not None:
            self.writer.submit(exchange.to_record())


STATE = web.AppKey("state", ProxyState)
