"""Who the client is, and which credential goes upstream."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from config import Settings
from proxy.errors import Unauthorized


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def client_identity(request: web.Request, settings: Settings) -> str:
    """The client's name for the log: a configured key's name, or a fingerprint of its token.

    The token itself is never stored; with ``client_api_keys`` set, a missing or unknown key is 401.
    """
    token = bearer_token(request)
    if settings.client_api_keys:
        if token is None:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        for name, key in settings.client_api_keys.items():
            if hmac.compare_digest(token.encode(), key.get_secret_value().encode()):
                return name
        raise Unauthorized("invalid API key for this proxy")
    if token is None:
        return "anonymous"
    return "key-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def upstream_authorization(request: web.Request, settings: Settings) -> str | None:
    """The Authorization header value sent upstream, per ``upstream_key_source``."""
    source = settings.upstream_key_source
    if source == "auto":
        # with proxy keys, the client's Authorization is the proxy's key: never send it upstream
        source = "config" if settings.upstream_api_key or settings.client_api_keys else "client"
    if source == "config":
        return f"Bearer {settings.upstream_api_key.get_secret_value()}" if settings.upstream_api_key else None
    return request.headers.get("Authorization")
