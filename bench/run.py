"""privacy-proxy against the physical floor, side by side in one run.

Starts, as separate processes on loopback: a fake LLM (bench/fake_upstream.py, JSON and SSE), a
bare aiohttp pass-through (bench/passthrough.py), privacy-proxy with detection off, and
privacy-proxy with detection on. Then, for 200 B, 2 KB and 20 KB prompts at concurrency 1, 16
and 64, it sends the same load to each target: direct to the fake LLM, through the pass-through,
through the proxy without detection, with detection and no PII, with detection and PII. Every
prompt is unique (a request number in front), so the proxy's detection cache never hides the
cost. Then streaming time to first byte, throughput on 1 core against 2 cores, and the proxy's
memory (all its processes) before and after the load.

Each cell is measured in --rounds rounds that take turns between the targets (this machine's
speed drifts; interleaving keeps the comparison fair): throughput is the median of the rounds,
percentiles are over all requests. Besides wall-clock numbers, the CPU time each server's
processes used per request (the pass-through's, the proxy's with its workers and log process)
is reported: it depends far less on what else the machine is doing.

Prints throughput and latency percentiles with ratios against the pass-through, and writes
bench/latency.png (p50 latency by prompt size) and bench/results.json.

Usage: pip install -e '.[bench]' && python bench/run.py [--seconds 3] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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

from machine import machine_scaling  # noqa: E402

from tests.corpus import prompt  # noqa: E402

SIZES = (200, 2048, 20_000)
CONCURRENCY = (1, 16, 64)
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
REQUEST_NUMBERS = itertools.count()  # one sequence for the whole run: no prompt is ever sent twice


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_ready(session: aiohttp.ClientSession, url: str, deadline: float = 90.0) -> None:
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


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def load(
    session: aiohttp.ClientSession,
    url: str,
    text: str,
    concurrency: int,
    seconds: float,
    *,
    stream: bool = False,
    minimum: int | None = None,
) -> dict[str, float]:
    """Send unique prompts from ``concurrency`` clients for about ``seconds`` and at least
    ``minimum`` requests (default: two per client); latency per request."""
    latencies: list[float] = []
    firsts: list[float] = []
    deadline = time.perf_counter() + seconds
    minimum = 2 * concurrency if minimum is None else minimum

    async def client() -> None:
        while time.perf_counter() < deadline or len(latencies) < minimum:
            body = {"model": "bench", "stream": stream,
                    "messages": [{"role": "user", "content": f"Request {next(REQUEST_NUMBERS)}. {text}"}]}  # fmt: skip
            started = time.perf_counter()
            async with session.post(url, data=json.dumps(body), headers=HEADERS) as response:
                await response.content.readany()
                firsts.append((time.perf_counter() - started) * 1000)
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url}: status {response.status}")
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "latencies": latencies,  # type: ignore[dict-item]
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "ttfb_p50": statistics.median(firsts),
        "ttfb_p95": percentile(firsts, 0.95),
    }


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of a process and its children so far; 0 for no process."""
    import psutil

    if pid is None:
        return 0.0
    process = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)])


async def measured(
    session: aiohttp.ClientSession,
    url: str,
    text: str,
    concurrency: int,
    seconds: float,
    pid: int | None,
    minimum: int = 0,
    stream: bool = False,
) -> dict[str, float]:
    """``load`` plus the CPU time the server process (tree) spent per request."""
    before = cpu_seconds(pid)
    result = await load(session, url, text, concurrency, seconds, minimum=max(concurrency, minimum), stream=stream)
    result["cpu_ms_per_request"] = (cpu_seconds(pid) - before) * 1000 / result["requests"] if pid else float("nan")
    return result


def combine(rounds: list[dict[str, float]], latencies: list[list[float]]) -> dict[str, float]:
    """One cell from its rounds: median throughput and CPU, percentiles over every request."""
    pooled = [value for values in latencies for value in values]
    return {
        "requests": sum(r["requests"] for r in rounds),
        "rps": statistics.median(r["rps"] for r in rounds),
        "cpu_ms_per_request": statistics.median(r["cpu_ms_per_request"] for r in rounds),
        "p50": statistics.median(pooled),
        "p95": percentile(pooled, 0.95),
        "p99": percentile(pooled, 0.99),
        "ttfb_p50": statistics.median(r["ttfb_p50"] for r in rounds),
        "ttfb_p95": statistics.median(r["ttfb_p95"] for r in rounds),
    }


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its children (the detector workers), in MB."""
    import psutil

    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 1e6


class Processes:
    """The fake LLM, the pass-through and proxies, started and stopped together."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.workdir = tempfile.mkdtemp(prefix="privacy-proxy-bench-")

    def start(self, command: list, env: dict[str, str] | None = None, cpus: str | None = None) -> subprocess.Popen:
        if cpus is not None:
            command = ["taskset", "-c", cpus, *command]
        proc = subprocess.Popen(
            command, cwd=self.workdir, env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def proxy(self, upstream: str, port: int, cpus: str | None = None, **settings: str) -> subprocess.Popen:
        script = Path(sys.executable).with_name("privacy-proxy")
        env = {f"PRIVACY_PROXY_{k.upper()}": v for k, v in settings.items()}
        env["PRIVACY_PROXY_DATABASE_URL"] = f"sqlite+aiosqlite:///{self.workdir}/log-{port}.db"
        env["PRIVACY_PROXY_ENCRYPTION_KEY_FILE"] = f"{self.workdir}/log.key"
        return self.start([script, "serve", "--upstream", upstream, "--port", str(port)], env, cpus)

    def stop(self, proc: subprocess.Popen | None = None) -> None:
        for p in [proc] if proc is not None else self.procs:
            p.terminate()
            p.wait(15)


async def run(args: argparse.Namespace) -> dict:
    ports = {name: free_port() for name in ("upstream", "passthrough", "off", "on")}
    upstream = f"http://127.0.0.1:{ports['upstream']}/v1"
    procs = Processes()
    procs.start([sys.executable, HERE / "fake_upstream.py", str(ports["upstream"])])
    passthrough = procs.start([sys.executable, HERE / "passthrough.py", str(ports["passthrough"]), upstream])
    proxy_off = procs.proxy(upstream, ports["off"], detection="off")
    proxy_on = procs.proxy(upstream, ports["on"], detector_workers="2")
    url = "http://127.0.0.1:{}/v1/chat/completions".format
    targets = {  # name: (url, prompt with PII, the server's pid for its CPU time)
        "direct": (f"{upstream}/chat/completions", False, None),
        "passthrough": (url(ports["passthrough"]), False, passthrough.pid),
        "proxy, detection off": (url(ports["off"]), False, proxy_off.pid),
        "proxy, no PII": (url(ports["on"]), False, proxy_on.pid),
        "proxy, PII": (url(ports["on"]), True, proxy_on.pid),
    }
    results: dict = {"cells": [], "ttfb": {}, "scaling": {}, "memory": {}}
    sizes = SIZES[:2] if args.quick else SIZES
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            for port in (ports["off"], ports["on"]):
                await wait_ready(session, f"http://127.0.0.1:{port}/readyz")
            for target, _pii, _pid in targets.values():  # warm every server (and every detector worker)
                await load(session, target, prompt(2048), 4, 1.0)
            results["memory"]["before_mb"] = rss_mb(proxy_on.pid)
            for size, concurrency in itertools.product(sizes, CONCURRENCY):
                rounds: dict[str, list[dict]] = {name: [] for name in targets}
                for _ in range(args.rounds):  # the targets take turns
                    for name, (target, with_pii, pid) in targets.items():
                        text = prompt(size, with_pii)
                        seconds, minimum = args.seconds / args.rounds, -(-2 * concurrency // args.rounds)
                        rounds[name].append(await measured(session, target, text, concurrency, seconds, pid, minimum))
                for name in targets:
                    cell = combine(rounds[name], [r.pop("latencies") for r in rounds[name]])
                    results["cells"].append({"size": size, "concurrency": concurrency, "target": name, **cell})
                    print(f"  {size:>6} B  c={concurrency:<3} {name:<22} {cell['rps']:8.1f} req/s  "
                          f"p50 {cell['p50']:8.2f} ms cpu {cell['cpu_ms_per_request']:.2f} ms", flush=True)  # fmt: skip
            results["memory"]["after_mb"] = rss_mb(proxy_on.pid)
            ttfb_rounds: dict[str, list[dict]] = {name: [] for name in targets if name != "proxy, PII"}
            for _ in range(args.rounds):
                for name in ttfb_rounds:
                    target, _pii, pid = targets[name]
                    seconds = args.seconds / args.rounds
                    ttfb_rounds[name].append(
                        await measured(session, target, "Say hello.", 1, seconds, pid, stream=True)
                    )
            for name, rounds_of in ttfb_rounds.items():
                results["ttfb"][name] = combine(rounds_of, [r.pop("latencies") for r in rounds_of])
        procs.stop(proxy_on)
        results["scaling"] = await scaling(procs, upstream, args.seconds)
    finally:
        procs.stop()
    return results


async def scaling(procs: Processes, upstream: str, seconds: float) -> dict[str, float]:
    """Throughput with detection on, 2 KB PII prompts, concurrency 16: pinned to 1 core, then 2."""
    out = {}
    for cores, cpus in ((1, "0"), (2, "0,1")):
        port = free_port()
        proc = procs.proxy(upstream, port, cpus=cpus, detector_workers=str(cores))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            await wait_ready(session, f"http://127.0.0.1:{port}/readyz")
            target = f"http://127.0.0.1:{port}/v1/chat/completions"
            await load(session, target, prompt(2048), 4, 1.0)
            out[f"{cores} core(s)"] = (await load(session, target, prompt(2048, True), 16, 2 * seconds))["rps"]
        procs.stop(proc)
    out["machine"] = machine_scaling()
    return out


def report(results: dict) -> None:
    cells = results["cells"]
    floor = {(c["size"], c["concurrency"]): c for c in cells if c["target"] == "passthrough"}
    print("\nthroughput and latency; ratios against the bare pass-through measured in the same run")
    print("(cpu: milliseconds of CPU the server's processes spent per request; direct: not measured)")
    print(f"{'size':>7} {'conc':>4}  {'target':<22}{'req/s':>9}{'x floor':>8}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}{'added p50':>10}{'cpu ms':>8}{'x floor':>8}")  # fmt: skip
    for c in cells:
        base = floor[(c["size"], c["concurrency"])]
        cpu, base_cpu = c.get("cpu_ms_per_request", float("nan")), base.get("cpu_ms_per_request", float("nan"))
        print(f"{c['size']:>7} {c['concurrency']:>4}  {c['target']:<22}{c['rps']:>9.1f}{c['rps'] / base['rps']:>8.2f}"
              f"{c['p50']:>9.2f}{c['p95']:>9.2f}{c['p99']:>9.2f}{c['p50'] - base['p50']:>+10.2f}"
              f"{cpu:>8.2f}{cpu / base_cpu:>8.2f}")  # fmt: skip
    print("\nstreaming, short unique prompt, concurrency 1: time to first byte")
    base = results["ttfb"]["passthrough"]["ttfb_p50"]
    for name, r in results["ttfb"].items():
        added = r["ttfb_p50"] - base
        print(f"  {name:<22} p50 {r['ttfb_p50']:7.2f} ms  p95 {r['ttfb_p95']:7.2f} ms  added p50 {added:+.2f} ms")
    scaling = results["scaling"]
    one, two = scaling["1 core(s)"], scaling["2 core(s)"]
    print(
        f"\ndetection on, 2 KB PII, concurrency 16: 1 core {one:.1f} req/s, 2 cores {two:.1f} req/s ({two / one:.2f}x)"
    )
    if "machine" in scaling:
        print(f"(this machine, 2 processes of pure-Python work against 1: {scaling['machine']:.2f}x)")
    memory = results["memory"]
    print(f"proxy memory (all processes, 2 detector workers): {memory['before_mb']:.0f} MB before the load, "
          f"{memory['after_mb']:.0f} MB after")  # fmt: skip


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for target in dict.fromkeys(c["target"] for c in results["cells"]):
        points = sorted(
            (c["size"], c["p50"]) for c in results["cells"] if c["target"] == target and c["concurrency"] == 1
        )
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=target)
    axis.set(xscale="log", yscale="log", xlabel="prompt size (bytes)", ylabel="p50 latency (ms)",
             title="privacy-proxy: latency by prompt size (concurrency 1)")  # fmt: skip
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="load per cell and target (all rounds)")
    parser.add_argument("--rounds", type=int, default=3, help="turns the targets take per cell")
    parser.add_argument("--quick", action="store_true", help="skip the 20 KB prompts")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    report(results)
    (HERE / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, HERE / "latency.png")
    print(f"\nwrote {HERE / 'results.json'} and {HERE / 'latency.png'}")


if __name__ == "__main__":
    main()
