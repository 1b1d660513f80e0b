"""Added latency of privacy-proxy against a bare pass-through, measured side by side in one run.

Starts a fake upstream, the bare pass-through (bench/passthrough.py) and privacy-proxy as
separate processes on loopback, then sends the same requests through each target.

Usage: python bench/run.py [--requests 200] [--concurrency 1] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.corpus import prompt  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_ready(session: aiohttp.ClientSession, url: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


async def measure(session: aiohttp.ClientSession, url: str, text: str, requests: int, concurrency: int) -> dict:
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": text}]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append((time.perf_counter() - started) * 1000)

    for _ in range(min(10, requests)):  # warm-up
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[int(len(latencies) * 0.95) - 1],
        "rps": len(latencies) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="privacy-proxy detector workers")
    parser.add_argument("--size", type=int, default=2048, help="prompt size in bytes")
    args = parser.parse_args()

    up_port, pass_port, proxy_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/v1"
    workdir = tempfile.mkdtemp(prefix="privacy-proxy-bench-")
    env = {**os.environ, "PRIVACY_PROXY_DETECTOR_WORKERS": str(args.workers)}
    script = Path(sys.executable).with_name("privacy-proxy")
    processes = [
        subprocess.Popen([sys.executable, HERE / "fake_upstream.py", str(up_port)]),
        subprocess.Popen([sys.executable, HERE / "passthrough.py", str(pass_port), upstream]),
        subprocess.Popen(
            [script, "serve", "--upstream", upstream, "--port", str(proxy_port)],
            cwd=workdir, env=env, stderr=subprocess.DEVNULL,
        ),
    ]  # fmt: skip
    targets = {
        "direct": f"{upstream}/chat/completions",
        "passthrough": f"http://127.0.0.1:{pass_port}/v1/chat/completions",
        "privacy-proxy": f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
    }
    try:
        rows, ttfb = asyncio.run(measure_all(targets, f"http://127.0.0.1:{proxy_port}/readyz", args))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)

    print(f"{args.size} B prompt, {args.requests} requests, concurrency {args.concurrency}, ", end="")
    print(f"{args.workers} detector worker(s)")
    print(f"{'prompt':<10}{'target':<15}{'p50 ms':>9}{'p95 ms':>9}{'req/s':>9}{'added p50 ms':>14}{'rps ratio':>11}")
    for label, results in rows:
        floor = results["passthrough"]
        for name, r in results.items():
            added = r["p50"] - floor["p50"]
            ratio = r["rps"] / floor["rps"]
            print(f"{label:<10}{name:<15}{r['p50']:>9.2f}{r['p95']:>9.2f}{r['rps']:>9.0f}{added:>14.2f}{ratio:>11.2f}")
    print("streaming, short prompt: time to first byte")
    for name, r in ttfb.items():
        added = r["p50"] - ttfb["passthrough"]["p50"]
        print(f"  {name:<15}p50 {r['p50']:6.2f} ms  p95 {r['p95']:6.2f} ms  added p50 {added:+.2f} ms")


async def measure_ttfb(session: aiohttp.ClientSession, url: str, requests: int) -> dict:
    """Time to the first byte of a streamed answer, for a short prompt (detection is cheap)."""
    body = json.dumps({"model": "bench", "stream": True, "messages": [{"role": "user", "content": "Say hello."}]})
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    firsts: list[float] = []
    for i in range(requests + 10):
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.content.readany()
            first = (time.perf_counter() - started) * 1000
            await response.read()
        if i >= 10:  # the first ten are warm-up
            firsts.append(first)
    firsts.sort()
    return {"p50": statistics.median(firsts), "p95": firsts[int(len(firsts) * 0.95) - 1]}


async def measure_all(targets: dict[str, str], ready_url: str, args: argparse.Namespace) -> tuple[list, dict]:
    rows = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await wait_ready(session, ready_url)
        for label, with_pii in (("no PII", False), ("with PII", True)):
            text = prompt(args.size, with_pii)
            results = {
                name: await measure(session, url, text, args.requests, args.concurrency)
                for name, url in targets.items()
            }
            rows.append((label, results))
        ttfb = {name: await measure_ttfb(session, url, args.requests) for name, url in targets.items()}
    return rows, ttfb


if __name__ == "__main__":
    main()
