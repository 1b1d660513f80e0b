"""POST /v1/chat/completions: the stages of one exchange, from client to upstream and back."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
from aiohttp import web

from proxy.auth import client_identity, upstream_authorization
from proxy.errors import ID_HEADER, ProxyError, StorageDown, error_response, from_redaction_error
from proxy.exchange import Exchange
from proxy.request_body import check_chat_request, parse_json_object, read_body
from proxy.state import ProxyState
from proxy.stream_relay import relay_stream
from proxy.upstream import client_response_headers, read_all, upstream_request_headers
from redaction import (
    CHAT_RULES,
    PlaceholderMap,
    RedactionError,
    answers_in_json,
    json_bytes,
    restore_chat_response,
    restore_text,
)

log = logging.getLogger("privacy_proxy.exchange")
STATE = web.AppKey("state", ProxyState)
NO_LOG_HEADER = "X-Privacy-Proxy-No-Log"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    exchange = Exchange(endpoint="/v1/chat/completions")
    try:
        return await _exchange(request, state, exchange)
    except ProxyError as exc:
        exchange.fail(exc.status, exc.code)
        return error_response(exc, exchange.id)
    except asyncio.CancelledError:
        exchange.fail(499, "client_disconnected")  # the client hung up; upstream call is cancelled
        raise
    except Exception:
        exchange.fail(500, "internal_error")  # the middleware answers 500 without details
        raise
    finally:
        state.record(exchange)
        log.info("%s", exchange.summary())


async def _exchange(request: web.Request, state: ProxyState, exchange: Exchange) -> web.StreamResponse:
    settings = state.settings
    exchange.client_id = client_identity(request, settings)
    opted_out = settings.allow_log_opt_out and request.headers.get(NO_LOG_HEADER, "").lower() in ("1", "true", "yes")
    exchange.log_it = settings.log_exchanges and not opted_out
    if exchange.log_it and not state.storage_ok:
        raise StorageDown("the exchange log is unavailable; nothing was forwarded")

    exchange.original_request = await read_body(request, settings.max_body_bytes)
    body = parse_json_object(exchange.original_request)
    check_chat_request(body)
    exchange.model, exchange.stream = body["model"], body.get("stream") is True

    json_content = answers_in_json(body)
    try:
        redaction = await state.redactor.redact(body, CHAT_RULES)
        exchange.mapping, exchange.detection_seconds = redaction.mapping, redaction.detection_seconds
        exchange.sanitized_request = redaction.sanitized_bytes()
    except RedactionError as exc:
        raise from_redaction_error(exc) from None

    headers = upstream_request_headers(request.headers, settings, upstream_authorization(request, settings))
    exchange.upstream_started = time.perf_counter()
    async with state.upstream.post("chat/completions", exchange.sanitized_request, headers) as upstream:
        exchange.status = upstream.status
        exchange.outcome = "ok" if upstream.status < 400 else "upstream_error"
        if upstream.content_type == "text/event-stream":
            headers = _response_headers(upstream, exchange)
            return await relay_stream(
                request, upstream, exchange, headers, redaction.mapping, json_content=json_content
            )
        payload = await read_all(upstream)
        exchange.upstream_finished = time.perf_counter()
        return _relay_whole(upstream, payload, exchange, redaction.mapping, json_content)


def _response_headers(upstream: aiohttp.ClientResponse, exchange: Exchange):
    headers = client_response_headers(upstream.headers)
    headers[ID_HEADER] = exchange.id
    return headers


def _relay_whole(
    upstream: aiohttp.ClientResponse, payload: bytes, exchange: Exchange, mapping: PlaceholderMap, json_content: bool
) -> web.Response:
    """A JSON answer (or an upstream error): restore placeholders in every text field."""
    try:
        restored = json_bytes(restore_chat_response(json.loads(payload), mapping, json_content=json_content))
    except ValueError:
        restored = restore_text(payload.decode("utf-8", "replace"), mapping).encode()
    exchange.response = restored
    headers = _response_headers(upstream, exchange)
    return web.Response(status=upstream.status, body=restored, headers=headers)
