"""Relaying an upstream SSE answer to the client, restoring placeholders event by event."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from proxy.errors import (
    AnswerRefused,
    ErrorStyle,
    ProxyError,
    ShuttingDown,
    UpstreamBroken,
    UpstreamTimeout,
    error_json,
    from_redaction_error,
)
from proxy.exchange import Exchange
from proxy.sse import SSEDecoder, SSEEvent, encode_event
from redaction import AnswerBlocked, EventRestorer, PlaceholderMap, RedactionError, json_bytes, jsonio, restore_text

log = logging.getLogger(__name__)
T = TypeVar("T")


# Threads for answers checked with detector types: their own pool, so that streams waiting on the
# detector never hold the default executor's threads (aiohttp resolves upstream names there).
GUARD_THREADS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="response-guard")


async def off_loop_if(blocking: bool, function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` in a guard thread when it may block on the detector (response NER types)."""
    if not blocking:
        return function(*args)
    return await asyncio.get_running_loop().run_in_executor(GUARD_THREADS, functools.partial(function, *args))


class EventRelay:
    """Writes restored events to the client; for OpenAI APIs exactly one ``[DONE]`` at the end."""

    def __init__(
        self,
        response: web.StreamResponse,
        restorer: EventRestorer,
        mapping: PlaceholderMap,
        *,
        done_marker: bool,
        error_style: ErrorStyle,
        json_events: bool = False,
    ) -> None:
        self.response = response
        self.json_events = json_events
        self.restorer = restorer
        self.mapping = mapping
        self.done_marker = done_marker
        self.error_style = error_style
        self.sent = bytearray()
        self.done = False
        policy = mapping.response_policy
        self.blocking = policy is not None and bool(policy.ner_types)

    async def _write(self, data: bytes) -> None:
        self.sent += data
        await self.response.write(data)

    async def _write_json(self, value: Any, event: str | None = None) -> None:
        await self._write(encode_event(json_bytes(value).decode(), event))

    async def send(self, event: SSEEvent) -> None:
        if self.done:
            return
        if event.data.strip() == "[DONE]":
            await self.finish(upstream_done=True)
            return
        try:
            data = jsonio.loads(event.data, allow_nan=True)
        except ValueError:
            if self.json_events:  # the SDKs fail on it (or end the stream in silence): a broken upstream
                raise UpstreamBroken("the upstream sent an event that is not JSON") from None
            restored_text = await off_loop_if(self.blocking, restore_text, event.data, self.mapping)
            await self._write(encode_event(restored_text, event.event))
            return
        for name, restored in await off_loop_if(self.blocking, self.restorer.restore, event.event, data):
            await self._write_json(restored, name)

    async def finish(self, *, upstream_done: bool = False) -> None:
        """Release held-back text, then ``[DONE]`` where the API uses it (also if the upstream forgot)."""
        if self.done:
            return
        for name, restored in await off_loop_if(self.blocking, self.restorer.finish):
            await self._write_json(restored, name)
        if self.done_marker or upstream_done:
            await self._write(encode_event("[DONE]"))
        self.done = True

    async def abort(self, error: ProxyError, *, release: bool = True) -> None:
        """The stream cannot go on: tell the client in-band (the status line is already sent).

        ``release=False``: what is held back is dropped (it holds the value that was blocked)."""
        try:
            for name, restored in await off_loop_if(self.blocking, self.restorer.finish) if release else ():
                await self._write_json(restored, name)
        except Exception as exc:
            log.error("releasing held-back text failed: %s", type(exc).__name__)
        with contextlib.suppress(ConnectionResetError):
            event = "error" if self.error_style == "anthropic" else None
            await self._write_json(error_json(error, self.error_style), event)


async def relay_stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    exchange: Exchange,
    headers: CIMultiDict[str],
    restorer: EventRestorer,
    mapping: PlaceholderMap,
    *,
    done_marker: bool,
    error_style: ErrorStyle,
    json_events: bool = False,
    stopping: Callable[[], bool] = lambda: False,
) -> web.StreamResponse:
    """SSE: restore event by event; only a possible placeholder prefix is ever held back.
    ``json_events``: an event whose data is not JSON ends the stream with an in-band error."""
    response = web.StreamResponse(status=upstream.status, headers=headers)
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    relay = EventRelay(
        response, restorer, mapping, done_marker=done_marker, error_style=error_style, json_events=json_events
    )
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
    except asyncio.CancelledError:
        if not stopping():
            raise  # the client hung up
        # the proxy itself cut the stream (shutdown_timeout nearly over): end it properly, with
        # an in-band error, rather than let the connection drop mid-event
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        error = ShuttingDown("the proxy is shutting down; the stream was cut before its end")
        exchange.fail(error.status, error.code)
        await relay.abort(error)
    except AnswerBlocked as exc:
        error = AnswerRefused(str(exc))
        exchange.fail(error.status, error.code)
        await relay.abort(error, release=False)
    except RedactionError as exc:  # the detector failed while checking the answer: fail closed
        error = from_redaction_error(exc)
        exchange.fail(error.status, error.code)
        await relay.abort(error, release=False)
    except UpstreamBroken as error:
        exchange.fail(error.status, error.code)
        await relay.abort(error)
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
