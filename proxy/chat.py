"""POST /v1/chat/completions: the stages of one exchange, from client to upstream and back."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
from aiohttp import web

from proxy.auth import client_identity, upstream_authorization
from proxy.errors import (
    ProxyError,
    StorageDown,
    UpstreamBroken,
    UpstreamTimeout,
    error_body,
    error_response,
    from_redaction_error,
)
from proxy.exchange import Exchange
from proxy.request_body import check_chat_request, parse_json_object, read_body
from proxy.sse import SSEDecoder, SSEEvent, encode_event
from proxy.state import ProxyState
from proxy.upstream import client_response_headers, read_all, upstream_request_headers
from redaction import (
    CHAT_RULES,
    ChatStreamRestorer,
    PlaceholderMap,
    RedactionError,
    restore_chat_response,
    restore_text,
)

log = logging.getLogger("privacy_proxy.exchange")
STATE = web.AppKey("state", ProxyState)
NO_LOG_HEADER = "X-Privacy-Proxy-No-Log"
ID_HEADER = "X-Privacy-Proxy-Id"


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

    try:
        redaction = await state.redactor.redact(body, CHAT_RULES)
    except RedactionError as exc:
        raise from_redaction_error(exc) from None
    exchange.mapping, exchange.detection_seconds = redaction.mapping, redaction.detection_seconds
    exchange.sanitized_request = json.dumps(redaction.body, ensure_ascii=False).encode()

    headers = upstream_request_headers(request.headers, settings, upstream_authorization(request, settings))
    exchange.upstream_started = time.perf_counter()
    async with state.upstream.post("chat/completions", exchange.sanitized_request, headers) as upstream:
        exchange.status = upstream.status
        exchange.outcome = "ok" if upstream.status < 400 else "upstream_error"
        if upstream.content_type == "text/event-stream":
            return await _relay_stream(request, upstream, exchange, redaction.mapping)
        payload = await read_all(upstream)
        exchange.upstream_finished = time.perf_counter()
        return _relay_whole(upstream, payload, exchange, redaction.mapping)


def _response_headers(upstream: aiohttp.ClientResponse, exchange: Exchange):
    headers = client_response_headers(upstream.headers)
    headers[ID_HEADER] = exchange.id
    return headers


def _relay_whole(
    upstream: aiohttp.ClientResponse, payload: bytes, exchange: Exchange, mapping: PlaceholderMap
) -> web.Response:
    """A JSON answer (or an upstream error): restore placeholders in every text field."""
    try:
        restored = json.dumps(restore_chat_response(json.loads(payload), mapping), ensure_ascii=False).encode()
    except ValueError:
        restored = restore_text(payload.decode("utf-8", "replace"), mapping).encode()
    exchange.response = restored
    headers = _response_headers(upstream, exchange)
    return web.Response(status=upstream.status, body=restored, headers=headers)


async def _relay_stream(
    request: web.Request, upstream: aiohttp.ClientResponse, exchange: Exchange, mapping: PlaceholderMap
) -> web.StreamResponse:
    """SSE: restore event by event; only a possible placeholder prefix is ever held back."""
    response = web.StreamResponse(status=upstream.status, headers=_response_headers(upstream, exchange))
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    relay = _ChatEventRelay(response, mapping)
    try:
        decoder = SSEDecoder()
        async for chunk in upstream.content.iter_any():
            for event in decoder.feed(chunk):
                await relay.send(event)
        for event in decoder.close():
            await relay.send(event)
        await relay.finish()
    except ConnectionResetError:
        exchange.fail(499, "client_disconnected")
    except (TimeoutError, aiohttp.ClientError) as exc:
        error = (
            UpstreamTimeout("the upstream stopped sending")
            if isinstance(exc, TimeoutError)
            else UpstreamBroken(f"the upstream stream broke ({type(exc).__name__})")
        )
        exchange.fail(error.status, error.code)
        await relay.abort(error)
    finally:
        exchange.upstream_finished = time.perf_counter()
        exchange.response = bytes(relay.sent)
    return response


class _ChatEventRelay:
    """Writes restored events to the client, exactly one ``[DONE]`` at the end."""

    def __init__(self, response: web.StreamResponse, mapping: PlaceholderMap) -> None:
        self.response = response
        self.mapping = mapping
        self.restorer = ChatStreamRestorer(mapping)
        self.sent = bytearray()
        self.done = False

    async def _write(self, data: bytes) -> None:
        self.sent += data
        await self.response.write(data)

    async def send(self, event: SSEEvent) -> None:
        if self.done:
            return
        if event.data.strip() == "[DONE]":
            await self.finish()
            return
        try:
            chunk = json.loads(event.data)
        except ValueError:
            await self._write(encode_event(restore_text(event.data, self.mapping), event.event))
            return
        if isinstance(chunk, dict) and "choices" in chunk:
            chunk = self.restorer.restore_chunk(chunk)
        else:
            chunk = restore_chat_response(chunk, self.mapping)
        await self._write(encode_event(json.dumps(chunk, ensure_ascii=False), event.event))

    async def finish(self) -> None:
        """Release held-back text, then ``[DONE]`` (also when the upstream forgot it)."""
        if self.done:
            return
        final = self.restorer.final_chunk()
        if final is not None:
            await self._write(encode_event(json.dumps(final, ensure_ascii=False)))
        await self._write(encode_event("[DONE]"))
        self.done = True

    async def abort(self, error: ProxyError) -> None:
        """The upstream broke mid-stream: tell the client in-band (the status is already sent)."""
        final = self.restorer.final_chunk()
        try:
            if final is not None:
                await self._write(encode_event(json.dumps(final, ensure_ascii=False)))
            await self._write(encode_event(json.dumps(error_body(error.message, error.error_type, error.code))))
        except ConnectionResetError:
            pass
