"""Which upstream serves a request: by the endpoint's API, then by model name.

Named ``upstreams`` are tried in configuration order: first one whose ``models`` patterns match
the request's model, else the first with no patterns; the single ``upstream`` setting (if any)
is the last fallback and serves every API. Nothing a client sends can name a host.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from config import Settings, UpstreamConfig
from proxy.errors import InvalidRequest
from proxy.upstream import Upstream

DEFAULT_UPSTREAM = "default"


class NoUpstream(InvalidRequest):
    code = "no_upstream"


class Router:
    def __init__(self, settings: Settings) -> None:
        self.upstreams = [Upstream(name, config, settings) for name, config in settings.upstreams.items()]
        if settings.upstream:
            fallback = UpstreamConfig(
                url=settings.upstream,
                api="any",
                api_key=settings.upstream_api_key,
                key_source=settings.upstream_key_source,
            )
            self.upstreams.append(Upstream(DEFAULT_UPSTREAM, fallback, settings))
        if not self.upstreams:
            raise ValueError("no upstream configured: set `upstream` or `upstreams`")

    def choose(self, provider: str, model: str | None) -> Upstream:
        candidates = [u for u in self.upstreams if u.serves(provider)]
        if model:
            for upstream in candidates:
                if any(fnmatchcase(model, pattern) for pattern in upstream.models):
                    return upstream
        for upstream in candidates:
            if not upstream.models:
                return upstream
        raise NoUpstream(f"no configured upstream serves this model on the {provider} API")

    async def open(self) -> None:
        for upstream in self.upstreams:
            await upstream.open()

    async def close(self) -> None:
        for upstream in self.upstreams:
            await upstream.close()
