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


def anthropic_message(content: list[dict[str, Any]], model: str = "claude-fake", stop: str = "end_turn") -> dict:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


def anthropic_sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def anthropic_text_events(text: str, piece_size: int = 1, model: str = "claude-fake") -> list[tuple[str, dict]]:
    """The event grammar of a streamed text answer, ``piece_size`` characters per delta."""
    start = anthropic_message([], model=model, stop=None)  # type: ignore[arg-type]
    events: list[tuple[str, dict]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        ("ping", {"type": "ping"}),
    ]
    for offset in range(0, len(text), piece_size):
        delta = {"type": "text_delta", "text": text[offset : offset + piece_size]}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 10}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return events


def responses_message(text: str, item_id: str = "msg_1") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {"type": "message", "id": item_id, "status": "completed", "role": "assistant", "content": [part]}


def responses_object(output: list[dict[str, Any]], model: str = "fake-model", status: str = "completed") -> dict:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    }


def responses_text_events(text: str, piece_size: int = 1, model: str = "fake-model") -> list[tuple[str, dict]]:
    """The Responses event sequence of a streamed text answer, ``piece_size`` characters per delta."""
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    empty = {**responses_message(""), "status": "in_progress", "content": []}
    events: list[tuple[str, dict]] = [
        ("response.created", {"response": responses_object([], model, "in_progress")}),
        ("response.output_item.added", {"output_index": 0, "item": empty}),
        ("response.content_part.added", {**ids, "part": {"type": "output_text", "text": "", "annotations": []}}),
    ]
    for offset in range(0, len(text), piece_size):
        events.append(("response.output_text.delta", {**ids, "delta": text[offset : offset + piece_size]}))
    events += [
        ("response.output_text.done", {**ids, "text": text}),
        ("response.content_part.done", {**ids, "part": {"type": "output_text", "text": text, "annotations": []}}),
        ("response.output_item.done", {"output_index": 0, "item": responses_message(text)}),
        ("response.completed", {"response": responses_object([responses_message(text)], model)}),
    ]
    return [(name, {"type": name, "sequence_number": n, **data}) for n, (name, data) in enumerate(events)]


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
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/moderations", self._echo_json)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model_id}", self._models)
        return app

    async def _record(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        self.received.append(Received(request.path, dict(request.headers), raw))
        return json.loads(raw) if raw else {}

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI Responses: echo the text of the last input item (or the input string)."""
        body = await self._record(request)
        if self.behaviour is not None:
            return await self.behaviour(request, body)
        items = body["input"]
        if isinstance(items, str):
            text = items
        else:
            content = items[-1].get("content", "")
            text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        if not body.get("stream"):
            return web.json_response(responses_object([responses_message(text)], model=body["model"]))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for name, data in responses_text_events(text, self.piece_size, model=body["model"]):
            await response.write(anthropic_sse(name, data))
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def _echo_json(self, request: web.Request) -> web.StreamResponse:
        """An operator-allowed path: answer with the body received, so restoration is visible."""
        return web.json_response({"echo": await self._record(request)})

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1, 0.2, float(len(t))]} for i, t in enumerate(texts)
        ]
        return web.json_response({"object": "list", "data": data, "model": body["model"], "usage": {}})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        """Legacy completions: echo the prompt (a string, or the first of a list)."""
        body = await self._record(request)
        prompt = body["prompt"] if isinstance(body["prompt"], str) else body["prompt"][0]
        base = {"id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": body["model"]}
        if not body.get("stream"):
            choice = {"index": 0, "text": prompt, "finish_reason": "stop", "logprobs": None}
            return web.json_response({**base, "choices": [choice]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for offset in range(0, len(prompt), self.piece_size):
            piece = {"index": 0, "text": prompt[offset : offset + self.piece_size], "finish_reason": None}
            await response.write(sse({**base, "choices": [piece]}))
        await response.write(sse({**base, "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}))
        await response.write(sse("[DONE]"))
        return response

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic Messages: echo the last user text (string or text blocks)."""
        raw = await request.read()
        self.received.append(Received(request.path, dict(request.headers), raw))
        body = json.loads(raw)
        if self.behaviour is not None:
            return await self.behaviour(request, body)
        text = _last_text(body)
        if not body.get("stream"):
            return web.json_response(anthropic_message([{"type": "text", "text": text}], model=body["model"]))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for name, data in anthropic_text_events(text, self.piece_size, model=body["model"]):
            await response.write(anthropic_sse(name, data))
        await response.write_eof()
        return response

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


if __name__ == "__main__":  # a stand-in LLM for demos: python -m tests.fake_upstream PORT
    import sys

    web.run_app(FakeUpstream().app(), host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 9999)
