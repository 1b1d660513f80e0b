"""``GET /metrics`` in Prometheus format: what an operator watches, never what a user wrote.

Every label comes from a closed set the proxy defines (route paths, status codes, outcome codes,
entity type names, stage names, configured upstream names): no model name, client id, header or
text ever becomes a label. Counters of the log writer and the detector are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from proxy.exchange import Exchange
    from proxy.state import ProxyState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# outcomes that mean the upstream failed us (as opposed to the client or the proxy)
UPSTREAM_FAILURES = frozenset({"upstream_error", "upstream_unreachable", "upstream_bad_response", "upstream_timeout"})


class _StateCollector(Collector):
    """Gauges and counters kept by the proxy's long-lived parts, read when Prometheus scrapes."""

    def __init__(self, state: ProxyState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        writer = state.writer
        if writer is not None:
            yield _gauge("log_queue_depth", "Records waiting to be written", writer.queue_depth)
            records = CounterMetricFamily("privacy_proxy_log_records", "Log records by result", labels=["result"])
            for result, value in (("written", writer.stats.written), ("failed", writer.stats.failed),
                                  ("rejected_queue_full", writer.stats.rejected)):  # fmt: skip
                records.add_metric([result], value)
            yield records
            yield CounterMetricFamily("privacy_proxy_log_write_retries", "Log write retries", writer.stats.retries)
        detector = state.detector
        yield _gauge("detector_ready", "1 when every detector worker is warm", int(detector.ready))
        yield _gauge("detector_workers", "Detector worker processes", getattr(detector, "workers", 0))
        yield _gauge("detector_busy_jobs", "Detection jobs in the workers", getattr(detector, "busy", 0))
        yield _gauge("detector_waiting_requests", "Requests waiting for a free worker", getattr(detector, "waiting", 0))
        yield CounterMetricFamily(
            "privacy_proxy_detector_batched_jobs", "Jobs carrying the texts of several waiting requests",
            getattr(detector, "batched_jobs", 0),
        )  # fmt: skip
        yield CounterMetricFamily("privacy_proxy_detector_restarts", "Pool restarts", getattr(detector, "restarts", 0))
        cache = getattr(detector, "cache", None)
        if cache is not None:
            lookups = CounterMetricFamily("privacy_proxy_detection_cache_lookups", "Cache lookups", labels=["result"])
            lookups.add_metric(["hit"], cache.hits)
            lookups.add_metric(["miss"], cache.misses)
            yield lookups
            yield _gauge("detection_cache_entries", "Texts remembered", len(cache))
        yield _gauge("storage_ok", "1 while the log can be written", int(state.storage_ok))


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"privacy_proxy_{name}", documentation, value)


class Metrics:
    """One registry per application (tests run many proxies in one process)."""

    def __init__(self, state: ProxyState) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "privacy_proxy_requests", "Exchanges by endpoint, HTTP status and outcome",
            ["endpoint", "status", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "privacy_proxy_request_seconds", "Time from request to the last byte of the answer",
            ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.stages = Histogram(
            "privacy_proxy_stage_seconds", "Time spent per stage (detection, upstream)",
            ["stage"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.entities = Counter(
            "privacy_proxy_entities", "Values replaced in requests, by entity type", ["entity_type"],
            registry=self.registry,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "privacy_proxy_upstream_errors", "Upstream failures by configured upstream and kind",
            ["upstream", "kind"], registry=self.registry,
        )  # fmt: skip
        self.registry.register(_StateCollector(state))

    def observe(self, exchange: Exchange, seconds: float) -> None:
        self.requests.labels(exchange.endpoint, str(exchange.status), exchange.outcome).inc()
        self.latency.labels(exchange.endpoint).observe(seconds)
        if exchange.detection_seconds is not None:
            self.stages.labels("detection").observe(exchange.detection_seconds)
        if exchange.upstream_started is not None and exchange.upstream_finished is not None:
            self.stages.labels("upstream").observe(exchange.upstream_finished - exchange.upstream_started)
        if exchange.mapping is not None:
            for entity_type, count in exchange.mapping.entity_counts().items():
                self.entities.labels(entity_type).inc(count)
        if exchange.outcome in UPSTREAM_FAILURES:
            self.upstream_errors.labels(exchange.upstream_name or "-", exchange.outcome).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def metrics_endpoint(request: web.Request) -> web.Response:
    from proxy.state import STATE

    return web.Response(body=request.app[STATE].metrics.render(), headers={"Content-Type": CONTENT_TYPE})
