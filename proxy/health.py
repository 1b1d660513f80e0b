"""Liveness and readiness, as orchestrators and the container HEALTHCHECK expect them."""

from __future__ import annotations

from aiohttp import web

from proxy.state import STATE


async def healthz(_request: web.Request) -> web.Response:
    """200 while the process serves."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 only when the detector is warm and the log database accepts a write."""
    state = request.app[STATE]
    checks = {"detector": state.detector.ready, "storage": await state.storage_writable()}
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503
    )
