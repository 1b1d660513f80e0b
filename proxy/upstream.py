"""Forwarding to the configured upstream: fixed host, filtered headers, mapped failures."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from config import Settings, UpstreamConfig
from proxy.errors import UpstreamBroken, UpstreamTimeout, UpstreamUnreachable

# Client headers passed upstream: an allow list, so a custom header never goes out, and the values
# of these are inspected like the body's texts. ``forward_headers`` adds to it. Authorization is
# decided by proxy.auth.
FORWARDED_HEADERS = frozenset(
    {"accept", "user-agent", "idempotency-key", "openai-organization", "openai-project", "openai-beta",
     "anthropic-version", "anthropic-beta"}
)  # fmt: skip
# the official SDKs' platform headers, by name: an application could add its own x-stainless-*
SDK_HEADERS = frozenset(
    f"x-stainless-{name}"
    for name in ("lang", "package-version", "os", "arch", "runtime", "runtime-version", "async", "retry-count",
                 "read-timeout", "timeout", "helper-method", "raw-response", "stream-helper", "poll-helper")
)  # fmt: skip

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
     "transfer-encoding", "upgrade", "proxy-connection"}
)  # fmt: skip
# Response headers the proxy recomputes (it rewrites the body) or must not pass on.
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {"content-length", "content-encoding", "set-cookie"}


def forwarded_client_headers(client: CIMultiDictProxy[str], settings: Settings) -> dict[str, str]:
    """The client's headers that go upstream (the allow list); their values are inspected like
    the body's texts before they leave."""
    allowed = _allowed_headers(tuple(settings.forward_headers))
    return {name: value for name, value in client.items() if name.lower() in allowed}


def upstream_request_headers(client_headers: dict[str, str], credentials: dict[str, str]) -> dict[str, str]:
    return {**client_headers, "Content-Type": "application/json", **credentials}


@functools.lru_cache(maxsize=8)
def _allowed_headers(extra: tuple[str, ...]) -> frozenset[str]:
    return FORWARDED_HEADERS | SDK_HEADERS | {h.lower() for h in extra}


def client_response_headers(upstream: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in upstream.items() if k.lower() not in DROPPED_RESPONSE_HEADERS)


class Upstream:
    """One named upstream: a shared HTTP client for its base URL (the client never picks the host),
    the API it speaks, the models routed to it, and where its credential comes from."""

    def __init__(self, name: str, config: UpstreamConfig, settings: Settings) -> None:
        self.name = name
        self.base_url = config.url
        self.api = config.api
        self.models = config.models
        self.api_key = config.api_key
        self.key_source = config.key_source
        self.response_redact_types = (
            settings.response_redact_types if config.response_redact_types is None else config.response_redact_types
        )
        self.response_block_types = (
            settings.response_block_types if config.response_block_types is None else config.response_block_types
        )
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=config.connect_timeout or settings.upstream_connect_timeout,
            sock_read=config.read_timeout or settings.upstream_read_timeout,
        )
        self._session: aiohttp.ClientSession | None = None

    def serves(self, provider: str) -> bool:
        return self.api in ("any", provider)

    async def open(self) -> None:
        # auto_decompress: the upstream may gzip its answer; we must read it to restore it
        self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=True, trust_env=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @asynccontextmanager
    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send to ``{upstream}/{path}`` (a body goes with Content-Length); failures become ProxyErrors."""
        assert self._session is not None, "Upstream.open() not called"
        url = f"{self.base_url}/{path}"
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                yield response
        except TimeoutError:
            raise UpstreamTimeout("the upstream did not answer in time") from None
        except aiohttp.ClientConnectorError:
            raise UpstreamUnreachable("the upstream could not be reached") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError) as exc:
            raise UpstreamBroken(f"the upstream connection failed ({type(exc).__name__})") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(f"the upstream request failed ({type(exc).__name__})") from None


async def read_all(response: aiohttp.ClientResponse) -> bytes:
    """The whole upstream body, with read failures mapped like the request's."""
    try:
        return await response.read()
    except TimeoutError:
        raise UpstreamTimeout("the upstream stopped sending before the answer was complete") from None
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise UpstreamBroken(f"the upstream answer was cut off ({type(exc).__name__})") from None
