"""The API endpoints the proxy serves: path, upstream path, format, shape check, error style."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxy.errors import ErrorStyle
from proxy.request_body import (
    check_any_object,
    check_chat_request,
    check_completions_request,
    check_embeddings_request,
    check_messages_request,
    check_responses_request,
)
from redaction import CHAT, COMPLETIONS, EMBEDDINGS, GENERIC, MESSAGES, RESPONSES, ApiFormat


@dataclass(frozen=True)
class Endpoint:
    path: str  # on the proxy, e.g. /v1/chat/completions
    upstream_path: str  # appended to the upstream base URL, e.g. chat/completions
    api: ApiFormat
    check: Callable[[dict[str, Any]], None]
    provider: str  # "openai" or "anthropic": credential scheme and error format
    # the request field naming an earlier answer whose history the client does not resend
    continues_field: str | None = None

    @property
    def answers_json(self) -> bool:
        """The provider's API answers in JSON (events too): anything else from the upstream is a
        broken answer. Operator-allowed paths may answer in any format."""
        return self.api is not GENERIC

    @property
    def error_style(self) -> ErrorStyle:
        return "anthropic" if self.provider == "anthropic" else "openai"


ENDPOINTS = (
    Endpoint("/v1/chat/completions", "chat/completions", CHAT, check_chat_request, "openai"),
    Endpoint("/v1/messages", "messages", MESSAGES, check_messages_request, "anthropic"),
    Endpoint("/v1/responses", "responses", RESPONSES, check_responses_request, "openai", "previous_response_id"),
    Endpoint("/v1/embeddings", "embeddings", EMBEDDINGS, check_embeddings_request, "openai"),
    Endpoint("/v1/completions", "completions", COMPLETIONS, check_completions_request, "openai"),
)


def allowed_path_endpoint(path: str) -> Endpoint:
    """An operator-allowed extra path (``allowed_paths``): the generic whole-body walk."""
    if not path.startswith("/v1/"):
        raise ValueError(f"allowed path {path!r} must start with /v1/")
    return Endpoint(path, path.removeprefix("/v1/"), GENERIC, check_any_object, "openai")
