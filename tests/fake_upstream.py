"""The one fake in the tests: a local stand-in for the hosted LLM that records what it receives.

By default it answers like OpenAI, echoing the last user message back (so the placeholders it
was sent come back and must be restored). Tests change ``behaviour`` to script other answers.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def _last_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1].get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


def chat_completion(
    content: str | None, tool_calls: list[dict[str, Any]] | None = None, model: str = "fake-model"
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def chunk(delta: dict[str, Any], finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake-model",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
    }


def sse(payload: Any) -> bytes:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class FakeUpstream:
    """``behaviour(request_json) -> web.StreamResponse`` coroutine factory; default: echo."""

    received: list[Received] = field(default_factory=list)
    behaviour: Any = None
    piece_size: int = 1  # characters per SSE event when streaming the echo
    release: asyncio.Event | None = None  # when set, answers wait for it (hang tests)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.received.append(Received(request.path, dict(request.headers), raw))
        body = json.loads(raw)
        try:
            if self.release is not None:
                await self.release.wait()
            if self.behaviour is not None:
                return await self.behaviour(request, body)
            if body.get("stream"):
                return await self.stream_text(request, _last_text(body), include_usage=bool(body.get("stream_options")))
            return web.json_response(chat_completion(_last_text(body), model=body.get("model", "fake-model")))
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def stream_text(self, request: web.Request, text: str, include_usage: bool = False) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(chunk({"role": "assistant", "content": ""})))
        for start in range(0, len(text), self.piece_size):
            await response.write(sse(chunk({"content": text[start : start + self.piece_size]})))
        await response.write(sse(chunk({}, "stop")))
        if include_usage:
            usage = {
                **chunk({}),
                "choices": [],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            await response.write(sse(usage))
        await response.write(sse("[DONE]"))
        await response.write_eof()
        return response
