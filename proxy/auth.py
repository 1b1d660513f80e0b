"""Who the client is, and which credential goes upstream."""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from config import Settings
from proxy.errors import Unauthorized
from proxy.upstream import Upstream


def client_token(request: web.Request) -> str | None:
    """The client's API key: OpenAI SDKs send ``Authorization: Bearer``, Anthropic's ``x-api-key``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


def client_identity(request: web.Request, settings: Settings) -> str:
    """The client's name for the log: a configured key's name, or a fingerprint of its token.

    The token itself is never stored; with ``client_api_keys`` set, a missing or unknown key is 401.
    """
    token = client_token(request)
    if settings.client_api_keys:
        if token is None:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        for name, key in settings.client_api_keys.items():
            if hmac.compare_digest(token.encode(), key.get_secret_value().encode()):
                return name
        raise Unauthorized("invalid API key for this proxy")
    if token is None:
        return "anonymous"
    return "key-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def upstream_auth_headers(
    request: web.Request, settings: Settings, upstream: Upstream, provider: str
) -> dict[str, str]:
    """The credential headers sent upstream, per the upstream's key source and the provider's scheme."""
    source = upstream.key_source
    if source == "auto":
        # with proxy keys, the client's credential is the proxy's key: never send it upstream
        source = "config" if upstream.api_key or settings.client_api_keys else "client"
    if source == "config":
        if not upstream.api_key:
            return {}
        key = upstream.api_key.get_secret_value()
        return {"x-api-key": key} if provider == "anthropic" else {"Authorization": f"Bearer {key}"}
    return {name: request.headers[name] for name in ("Authorization", "x-api-key") if name in request.headers}
