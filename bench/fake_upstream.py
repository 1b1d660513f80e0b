"""A fast fake LLM for benchmarks: answers every chat completion at once (JSON or SSE).

Usage: python bench/fake_upstream.py PORT
"""

from __future__ import annotations

import json
import sys

from aiohttp import web

ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Noted."}, "finish_reason": "stop"}],
}


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        return web.json_response(ANSWER)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for word in ("Noted", ", ", "thanks", "."):
        chunk = {**ANSWER, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": word}}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


if __name__ == "__main__":
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
