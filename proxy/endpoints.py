"""The API endpoints the proxy serves: path, upstream path, format, shape check, error style."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.errors import ErrorStyle
from proxy.request_body import check_chat_request, check_messages_request
from redaction import CHAT, MESSAGES, ApiFormat


@dataclass(frozen=True)
class Endpoint:
    path: str  # on the proxy, e.g. /v1/chat/completions
    upstream_path: str  # appended to the upstream base URL, e.g. chat/completions
    api: ApiFormat
    check: Callable[[dict[str, Any]], None]
    provider: str  # "openai" or "anthropic": credential scheme and error format
    streams: bool = True

    @property
    def error_style(self) -> ErrorStyle:
        return "anthropic" if self.provider == "anthropic" else "openai"


ENDPOINTS = (
    Endpoint("/v1/chat/completions", "chat/completions", CHAT, check_chat_request, "openai"),
    Endpoint("/v1/messages", "messages", MESSAGES, check_messages_request, "anthropic"),
)
