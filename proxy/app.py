"""The aiohttp application: routes, error middleware, and the lifecycle of shared resources."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from config import Settings
from proxy.endpoints import ENDPOINTS, allowed_path_endpoint
from proxy.errors import ErrorStyle, ProxyError, error_body, error_response
from proxy.handler import handler_for, list_models
from proxy.health import healthz, readyz
from proxy.metrics import metrics_endpoint
from proxy.state import STATE, ProxyState
from redaction import DetectorPool

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON in the style of the SDK that calls the path (Anthropic's under
    /v1/messages, OpenAI's elsewhere); unexpected ones say nothing about the request."""
    style: ErrorStyle = "anthropic" if request.path.startswith("/v1/messages") else "openai"
    try:
        return await handler(request)
    except ProxyError as exc:
        return error_response(exc, style=style)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        messages = {
            404: f"unknown path {request.path}; this proxy serves {', '.join(e.path for e in ENDPOINTS)}, "
            "GET /v1/models and the operator's allowed_paths",
            405: f"method {request.method} is not allowed on {request.path}",
        }
        message = messages.get(exc.status, exc.reason)
        body = error_body(message, "not_found_error" if exc.status == 404 and style == "anthropic" else
                          "invalid_request_error", str(exc.status), style)  # fmt: skip
        return web.json_response(body, status=exc.status)
    except Exception as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        log.error("unhandled %s at %s:%s", type(exc).__name__, frame.filename, frame.lineno)
        return web.json_response(error_body("internal proxy error", "api_error" if style == "anthropic" else
                                            "server_error", "internal_error", style), status=500)  # fmt: skip


def create_app(settings: Settings, detector: DetectorPool | None = None) -> web.Application:
    """Build the proxy. ``detector``: an already started pool to share (tests); else one is made."""
    app = web.Application(middlewares=[json_errors], client_max_size=settings.max_body_bytes + 1)
    app[STATE] = ProxyState.from_settings(settings, detector)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await app[STATE].open()
        yield
        await app[STATE].close()

    app.cleanup_ctx.append(resources)

    async def stopping(app: web.Application) -> None:  # before in-flight requests are waited for
        app[STATE].begin_shutdown()

    app.on_shutdown.append(stopping)
    endpoints = [*ENDPOINTS, *(allowed_path_endpoint(path) for path in settings.allowed_paths)]
    for endpoint in endpoints:
        app.router.add_post(endpoint.path, handler_for(endpoint))
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id}", list_models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if settings.metrics:
        app.router.add_get("/metrics", metrics_endpoint)
    return app
