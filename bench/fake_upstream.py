"""A fast fake LLM for benchmarks: answers every chat completion at once (JSON or SSE).

The JSON answer is a paragraph of about 1 KB, the size of a typical short answer, so the proxy's
work on the answer (restoring placeholders, checking for values the caller never sent) is
measured too; like most models' prose it has a curly apostrophe and a dash (non-ASCII text is
read through the guard's decoded view, plain ASCII is not). A stream answers in four small
events (time to first byte is what it measures).

Usage: python bench/fake_upstream.py PORT
"""

from __future__ import annotations

import json
import sys

from aiohttp import web

PARAGRAPH = (
    "Here is a summary of the review. The migration of the build pipeline is planned in 3 steps: "
    "first the runners move to the new cluster, then the caches \u2014 and last the release jobs. The legacy "
    "queue is retired once version 2.4 has shipped and no job has used it for 14 days. Capacity for the "
    "next release is sized on last quarter\u2019s peak plus 30 percent, with room to add two more nodes. "
)
ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": PARAGRAPH * 3}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 500, "completion_tokens": 250, "total_tokens": 750},
}


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        return web.json_response(ANSWER)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for word in ("Noted", ", ", "thanks", "."):
        delta = {"index": 0, "delta": {"content": word}}
        chunk = {**ANSWER, "object": "chat.completion.chunk", "choices": [delta], "usage": None}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    return response


if __name__ == "__main__":
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
