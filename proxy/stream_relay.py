"""Relaying an upstream SSE answer to the client, restoring placeholders event by event."""

from __future__ import annotations

import contextlib
import json
import logging
import time

import aiohttp
from aiohttp import web

from proxy.errors import ProxyError, UpstreamBroken, UpstreamTimeout, error_body
from proxy.exchange import Exchange
from proxy.sse import SSEDecoder, SSEEvent, encode_event
from redaction import ChatStreamRestorer, PlaceholderMap, json_bytes, restore_chat_response, restore_text

log = logging.getLogger(__name__)


class ChatEventRelay:
    """Writes restored events to the client, and exactly one ``[DONE]`` at the end."""

    def __init__(self, response: web.StreamResponse, mapping: PlaceholderMap, *, json_content: bool) -> None:
        self.response = response
        self.mapping = mapping
        self.restorer = ChatStreamRestorer(mapping, json_content=json_content)
        self.sent = bytearray()
        self.done = False

    async def _write(self, data: bytes) -> None:
        self.sent += data
        await self.response.write(data)

    async def _write_json(self, value: object, event: str | None = None) -> None:
        await self._write(encode_event(json_bytes(value).decode(), event))

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
        await self._write_json(chunk, event.event)

    async def finish(self) -> None:
        """Release held-back text, then ``[DONE]`` (also when the upstream forgot it)."""
        if self.done:
            return
        final = self.restorer.final_chunk()
        if final is not None:
            await self._write_json(final)
        await self._write(encode_event("[DONE]"))
        self.done = True

    async def abort(self, error: ProxyError) -> None:
        """The stream cannot go on: tell the client in-band (the status line is already sent)."""
        try:
            final = self.restorer.final_chunk()
            if final is not None:
                await self._write_json(final)
        except Exception as exc:
            log.error("releasing held-back text failed: %s", type(exc).__name__)
        with contextlib.suppress(ConnectionResetError):
            await self._write_json(error_body(error.message, error.error_type, error.code))


async def relay_stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    exchange: Exchange,
    headers: dict[str, str] | object,
    mapping: PlaceholderMap,
    *,
    json_content: bool,
) -> web.StreamResponse:
    """SSE: restore event by event; only a possible placeholder prefix is ever held back."""
    response = web.StreamResponse(status=upstream.status, headers=headers)  # type: ignore[arg-type]
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    relay = ChatEventRelay(response, mapping, json_content=json_content)
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
        error: ProxyError = (
            UpstreamTimeout("the upstream stopped sending")
            if isinstance(exc, TimeoutError)
            else UpstreamBroken(f"the upstream stream broke ({type(exc).__name__})")
        )
        exchange.fail(error.status, error.code)
        await relay.abort(error)
    except Exception as exc:
        log.error("stream relay failed: %s", type(exc).__name__)
        exchange.fail(500, "internal_error")
        await relay.abort(ProxyError("internal proxy error while relaying the stream"))
    finally:
        exchange.upstream_finished = time.perf_counter()
        exchange.response = bytes(relay.sent)
    return response
