"""The physical floor: a bare aiohttp reverse proxy that forwards bytes and does nothing else.

Usage: python bench/passthrough.py PORT UPSTREAM_BASE_URL
"""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web


def make_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def on_startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession()

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": "application/json"}
        async with app["session"].post(f"{upstream}/chat/completions", data=body, headers=headers) as up:
            response = web.StreamResponse(status=up.status, headers={"Content-Type": up.headers["Content-Type"]})
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/v1/chat/completions", forward)
    return app


if __name__ == "__main__":
    web.run_app(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
