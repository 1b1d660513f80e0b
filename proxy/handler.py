"""One exchange through the proxy, for any endpoint: the stages from client to upstream and back.

identify -> read -> parse + check shape -> redact -> forward -> restore (whole or stream) -> log
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from config import Settings
from proxy.auth import client_identity, upstream_auth_headers
from proxy.endpoints import Endpoint
from proxy.errors import (
    ID_HEADER,
    AnswerRefused,
    InvalidRequest,
    ProxyError,
    ShuttingDown,
    StorageDown,
    UpstreamBroken,
    error_response,
    from_redaction_error,
)
from proxy.exchange import Exchange
from proxy.request_body import parse_json_object, read_body
from proxy.state import STATE, ProxyState
from proxy.stream_relay import off_loop_if, relay_stream
from proxy.upstream import client_response_headers, forwarded_client_headers, read_all, upstream_request_headers
from redaction import AnswerBlocked, PlaceholderMap, RedactionError, json_bytes, jsonio, restore_text

log = logging.getLogger("privacy_proxy.exchange")
MODEL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}")
NO_LOG_HEADER = "X-Privacy-Proxy-No-Log"
TRAINING_HEADER = "X-Privacy-Proxy-Training"
_YES, _NO = frozenset({"1", "true", "yes", "y", "on"}), frozenset({"0", "false", "no", "n", "off"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def handler_for(endpoint: Endpoint) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        exchange = Exchange(endpoint=endpoint.path)
        try:
            return await _exchange(request, state, endpoint, exchange)
        except ProxyError as exc:
            exchange.fail(exc.status, exc.code)
            return error_response(exc, exchange.id, endpoint.error_style)
        except asyncio.CancelledError:
            if state.stopping:  # shutdown_timeout ran out: the proxy cut it
                exchange.fail(ShuttingDown.status, ShuttingDown.code)
            else:
                exchange.fail(499, "client_disconnected")  # the client hung up; upstream call is cancelled
            raise
        except Exception:
            exchange.fail(500, "internal_error")  # the middleware answers 500 without details
            raise
        finally:
            if exchange.mapping is not None and exchange.status < 400:
                exchange.mapping.remember()
            # after the answer is on its way: aiohttp writes it when this returns, and the
            # bookkeeping (log record, metrics, log line: ~0.1 ms) runs on the next loop turn
            asyncio.get_running_loop().call_soon(_account, state, exchange)

    return handle


def _account(state: ProxyState, exchange: Exchange) -> None:
    state.record(exchange)
    state.metrics.observe(exchange, time.perf_counter() - exchange.started)
    if log.isEnabledFor(logging.INFO):
        log.info("%s", exchange.summary(), extra=exchange.log_fields())


async def _exchange(
    request: web.Request, state: ProxyState, endpoint: Endpoint, exchange: Exchange
) -> web.StreamResponse:
    settings = state.settings
    exchange.client_id = client_identity(request, settings)
    opted_out = settings.allow_log_opt_out and _yes_or_no(request, NO_LOG_HEADER) is True
    exchange.log_it = settings.log_exchanges and not opted_out
    exchange.training_consent = _training_consent(request, settings, exchange.client_id)
    if exchange.log_it and not state.storage_ok:
        raise StorageDown("the exchange log is unavailable; nothing was forwarded")

    exchange.original_request = await read_body(request, settings.max_body_bytes)
    body = parse_json_object(exchange.original_request)
    endpoint.check(body)
    exchange.model, exchange.stream = body.get("model"), body.get("stream") is True
    # the request's top-level settings (e.g. response_format) tell how to restore the answer;
    # a shallow copy, because redaction rewrites `body` in place
    request_view = dict(body)

    target = state.router.choose(endpoint.provider, exchange.model)
    exchange.upstream_name = target.name
    try:
        continues = body.get(endpoint.continues_field) if endpoint.continues_field else None
        store = state.placeholder_store(exchange.client_id)
        redaction = await state.redactor.redact(
            body, endpoint.api.rules, store, continues if isinstance(continues, str) else None,
            headers=forwarded_client_headers(request.headers, settings),
        )  # fmt: skip
        exchange.mapping, exchange.detection_seconds = redaction.mapping, redaction.detection_seconds
        exchange.sanitized_request = redaction.sanitized_bytes()
    except RedactionError as exc:
        raise from_redaction_error(exc) from None

    redaction.mapping.response_policy = state.response_policy(target)
    credentials = upstream_auth_headers(request, settings, target, endpoint.provider)
    headers = upstream_request_headers(redaction.headers, credentials)
    exchange.upstream_started = time.perf_counter()
    async with target.request("POST", endpoint.upstream_path, headers, exchange.sanitized_request) as upstream:
        exchange.status = upstream.status
        exchange.outcome = "ok" if upstream.status < 400 else "upstream_error"
        if upstream.content_type == "text/event-stream" and endpoint.api.event_restorer is not None:
            restorer = endpoint.api.event_restorer(redaction.mapping, request_view)
            return await _tracked(state, relay_stream(
                request, upstream, exchange, _response_headers(upstream, exchange), restorer, redaction.mapping,
                done_marker=endpoint.api.done_marker, error_style=endpoint.error_style,
                json_events=endpoint.answers_json, stopping=lambda: state.stopping,
            ))  # fmt: skip
        payload = await read_all(upstream)
        exchange.upstream_finished = time.perf_counter()
        blocking = bool(redaction.mapping.response_policy.ner_types)
        try:
            json_only = upstream.status < 400 and endpoint.answers_json  # error bodies may be anything
            restored = await off_loop_if(
                blocking, _restore_whole, payload, redaction.mapping, endpoint, request_view, json_only
            )
        except AnswerBlocked as exc:
            raise AnswerRefused(str(exc)) from None
        except RedactionError as exc:  # the detector failed while checking the answer
            raise from_redaction_error(exc) from None
        exchange.response = restored
        return web.Response(status=upstream.status, body=restored, headers=_response_headers(upstream, exchange))


async def _tracked(state: ProxyState, relay: Awaitable[web.StreamResponse]) -> web.StreamResponse:
    """Run a stream relay where shutdown can find it (``ProxyState.begin_shutdown``)."""
    task = asyncio.current_task()
    assert task is not None
    state.streams.add(task)
    try:
        return await relay
    finally:
        state.streams.discard(task)


def _training_consent(request: web.Request, settings: Settings, client_id: str) -> bool:
    """Whether the record may ever be exported for training: the request's header, else the
    client's default, else the global one. (It is kept for audit either way.)"""
    said = _yes_or_no(request, TRAINING_HEADER)
    if said is not None:
        return said
    return settings.training_consent_clients.get(client_id, settings.training_consent_default)


def _yes_or_no(request: web.Request, header: str) -> bool | None:
    """A yes/no header's answer, None when absent. Anything else is refused: an opt-out written
    in a form the proxy does not know must not be read as consent."""
    value = request.headers.get(header, "").strip().lower()
    if not value:
        return None
    if value not in _YES and value not in _NO:
        raise InvalidRequest(f"{header} must be yes or no (also accepted: true/false, 1/0, on/off)")
    return value in _YES


def _response_headers(upstream: aiohttp.ClientResponse, exchange: Exchange) -> CIMultiDict[str]:
    headers = client_response_headers(upstream.headers)
    headers[ID_HEADER] = exchange.id
    return headers


def _restore_whole(
    payload: bytes, mapping: PlaceholderMap, endpoint: Endpoint, request_view: dict, json_only: bool
) -> bytes:
    """A JSON answer (or an upstream error): restore placeholders in every text field.
    ``json_only``: an answer that is not JSON is a broken upstream (the SDK could not read it)."""
    try:
        answer = jsonio.loads(payload, allow_nan=True)
    except ValueError:
        if json_only:
            raise UpstreamBroken("the upstream's answer is not JSON") from None
        return restore_text(payload.decode("utf-8", "replace"), mapping).encode("utf-8", "replace")
    return json_bytes(endpoint.api.restore_body(answer, mapping, request_view))


async def list_models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models[/{id}]: nothing personal goes out or comes back; passed through as it is."""
    state = request.app[STATE]
    client_identity(request, state.settings)  # proxy keys are enforced here too
    model_id = request.match_info.get("model_id")
    if model_id is not None and (not MODEL_ID_RE.fullmatch(model_id) or ".." in model_id):
        return error_response(InvalidRequest("invalid model id"))
    # only ever models or models/<one quoted segment>: a client must not reach other upstream paths
    path = "models" if model_id is None else f"models/{quote(model_id, safe='')}"
    try:
        target = state.router.choose("openai", None)
        credentials = upstream_auth_headers(request, state.settings, target, "openai")
        headers = {**forwarded_client_headers(request.headers, state.settings), **credentials}
        async with target.request("GET", path, headers) as upstream:
            payload = await read_all(upstream)
            return web.Response(status=upstream.status, body=payload, headers=client_response_headers(upstream.headers))
    except ProxyError as exc:
        return error_response(exc)
