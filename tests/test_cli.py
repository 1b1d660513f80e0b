"""The real ``privacy-proxy`` console script, run as an operator runs it, in a subprocess.

The fake upstream is served in-process on loopback. Each ``serve`` start loads the spaCy model
(a few seconds), so the file starts the server only twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from storage import ExchangeRow, load_keyring, unseal
from tests.conftest import free_port
from tests.fake_upstream import chunk, sse

SCRIPT = Path(sys.executable).with_name("privacy-proxy")
NAME = "Jane Roe"
EMAIL = "jane.roe@example.com"
START_DEADLINE = 60.0
GUARD_SECONDS = 30.0  # a failure guard: a broken proxy fails the test instead of hanging it


def cli_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PRIVACY_PROXY_")}
    env["PRIVACY_PROXY_DETECTOR_WORKERS"] = "1"
    env.update(extra)
    return env


def distinct_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return list(ports)


@dataclass
class Server:
    process: asyncio.subprocess.Process
    stderr_file: Path

    @property
    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")


@asynccontextmanager
async def serve(args: list[str], cwd: Path, env: dict[str, str], stderr_file: Path) -> AsyncIterator[Server]:
    with stderr_file.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT), "serve", *args, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err,
            start_new_session=True,  # a process group of its own, as under systemd or a container runtime
        )  # fmt: skip
    try:
        yield Server(process, stderr_file)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def wait_until_answering(server: Server, port: int, path: str) -> None:
    """Poll ``path`` until it answers 200 (with a deadline); fail early if the process died."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_DEADLINE
    async with aiohttp.ClientSession() as http:
        while loop.time() < deadline:
            if server.process.returncode is not None:
                pytest.fail(f"privacy-proxy exited with {server.process.returncode}:\n{server.stderr}")
            try:
                async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"privacy-proxy did not answer 200 on {path} within {START_DEADLINE}s:\n{server.stderr}")


async def listening(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def wait_until_closed(port: int, deadline_seconds: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    while await listening(port):
        if loop.time() > deadline:
            pytest.fail(f"port {port} still accepts connections {deadline_seconds}s after SIGTERM")
        await asyncio.sleep(0.05)


def sse_content(raw: bytes) -> tuple[str, int]:
    """The concatenated delta contents of an SSE body, and how many [DONE] events it had."""
    text, done = "", 0
    for line in raw.decode().splitlines():
        if not line.startswith("data: "):
            continue
        data = line.removeprefix("data: ")
        if data == "[DONE]":
            done += 1
            continue
        for choice in json.loads(data).get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
    return text, done


def logged_records(workdir: Path):
    engine = create_engine(f"sqlite:///{workdir / 'privacy-proxy.db'}")
    try:
        with Session(engine) as session:
            rows = session.execute(select(ExchangeRow).order_by(ExchangeRow.id)).scalars().all()
            keyring = load_keyring(None, workdir / "privacy-proxy.key")
            return [unseal(row, keyring) for row in rows]
    finally:
        engine.dispose()


async def test_serve_defaults_answers_and_drains_on_sigterm(upstream, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    port, env_port, file_port = distinct_ports(3)
    config = tmp_path / "settings.yaml"
    config.write_text(f"port: {file_port}\n")
    env = cli_env(PRIVACY_PROXY_PORT=str(env_port))
    args = ["--upstream", upstream.url, "--port", str(port), "--config", str(config)]

    async with serve(args, workdir, env, tmp_path / "stderr.log") as server:
        await wait_until_answering(server, port, "/readyz")
        # --port beats both the environment and the config file
        assert not await listening(env_port) and not await listening(file_port)
        base = f"http://127.0.0.1:{port}/v1"

        async with aiohttp.ClientSession() as http:
            body = {"model": "m", "messages": [{"role": "user", "content": f"My name is {NAME}."}]}
            async with http.post(f"{base}/chat/completions", json=body) as response:
                assert response.status == 200
                answer = await response.json()
        assert answer["choices"][0]["message"]["content"] == f"My name is {NAME}."
        assert NAME.encode() not in upstream.fake.received[0].raw

        # embedded defaults: log and key in the working directory, key private, a warning naming it
        key_file = workdir / "privacy-proxy.key"
        assert (workdir / "privacy-proxy.db").is_file()
        assert key_file.is_file() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        warning = [line for line in server.stderr.splitlines() if str(key_file.resolve()) in line]
        assert warning and "WARNING" in warning[0]
        assert not [line for line in server.stderr.splitlines() if " alembic." in line]  # no library chatter

        # SIGTERM with a stream in flight: it is drained, not cut
        arrived, gate = asyncio.Event(), asyncio.Event()

        async def held_stream(request: web.Request, received: dict) -> web.StreamResponse:
            arrived.set()
            await gate.wait()
            return await upstream.fake.stream_text(request, received["messages"][-1]["content"])

        upstream.fake.behaviour = held_stream
        upstream.fake.piece_size = 2
        text = f"Hi, I am {NAME}, mail me at {EMAIL}."

        async def stream_request() -> tuple[int, bytes]:
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": text}]}
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{base}/chat/completions", json=body) as response,
            ):
                return response.status, await response.read()

        in_flight = asyncio.create_task(stream_request())
        try:
            await asyncio.wait_for(arrived.wait(), 30)
            # to the whole group, as `timeout`, systemd and container runtimes send it: the workers
            # and the log process must outlive the drain, not die and be "restarted"
            os.killpg(server.process.pid, signal.SIGTERM)
            await wait_until_closed(port)  # shutdown has begun: no new connections
            assert not in_flight.done()
        finally:
            gate.set()
        status, raw = await asyncio.wait_for(in_flight, 30)
        assert status == 200
        assert sse_content(raw) == (text, 1)
        assert await asyncio.wait_for(server.process.wait(), 30) == 0

    stderr = server.stderr
    assert NAME not in stderr and EMAIL not in stderr, "personal data in the application log"
    assert "Traceback" not in stderr and " ERROR " not in stderr, stderr
    # the drained exchange was logged before exit (by the log process: the default)
    records = logged_records(workdir)
    assert [(r.stream, r.status, r.outcome) for r in records] == [(False, 200, "ok"), (True, 200, "ok")]
    assert records[1].original_request is not None and EMAIL.encode() in records[1].original_request


async def test_a_stream_cut_by_the_shutdown_timeout_ends_with_an_error_event(upstream, tmp_path):
    """When shutdown_timeout runs out, the client learns in-band that the proxy stopped (an SDK
    raises instead of returning a truncated answer), and the record does not blame the client."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    [port] = distinct_ports(1)
    env = cli_env(PRIVACY_PROXY_SHUTDOWN_TIMEOUT="0.5")
    arrived = asyncio.Event()

    async def endless_stream(request: web.Request, received: dict) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(chunk({"content": "Hello"})))
        arrived.set()
        await asyncio.Event().wait()  # never ends on its own
        return response

    upstream.fake.behaviour = endless_stream
    async with serve(["--upstream", upstream.url, "--port", str(port)], workdir, env, tmp_path / "err.log") as server:
        await wait_until_answering(server, port, "/readyz")
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "Hi."}]}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
            await asyncio.wait_for(arrived.wait(), GUARD_SECONDS)
            os.killpg(server.process.pid, signal.SIGTERM)
            raw = await asyncio.wait_for(response.content.read(), GUARD_SECONDS)
        assert await asyncio.wait_for(server.process.wait(), 30) == 0
    events = [line.removeprefix("data: ") for line in raw.decode().splitlines() if line.startswith("data: ")]
    *chunks, last = [json.loads(event) for event in events]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello"  # nothing lost
    assert last["error"]["code"] == "proxy_shutting_down"
    [record] = logged_records(workdir)
    assert (record.status, record.outcome) == (503, "proxy_shutting_down")


async def test_environment_beats_config_file_which_beats_defaults(upstream, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    env_port, file_port = distinct_ports(2)
    config = tmp_path / "settings.yaml"
    # the upstream comes from the file only: without it the process could not start at all
    config.write_text(f"upstream: {upstream.url}\nport: {file_port}\n")
    env = cli_env(PRIVACY_PROXY_PORT=str(env_port))

    async with serve(["--config", str(config)], workdir, env, tmp_path / "stderr.log") as server:
        await wait_until_answering(server, env_port, "/readyz")
        assert not await listening(file_port)
        async with aiohttp.ClientSession() as http:
            body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
            async with http.post(f"http://127.0.0.1:{env_port}/v1/chat/completions", json=body) as response:
                assert response.status == 200
        assert len(upstream.fake.received) == 1
        server.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(server.process.wait(), 30) == 0


async def run_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT), *args, cwd=cwd, env=cli_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_missing_upstream_is_a_clear_error(tmp_path):
    code, out, err = await run_cli("serve", "--port", str(free_port()), cwd=tmp_path)
    assert code != 0
    assert "--upstream" in err and "PRIVACY_PROXY_UPSTREAM" in err
    assert "Traceback" not in err + out
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written


async def test_help(tmp_path):
    code, out, _ = await run_cli("--help", cwd=tmp_path)
    assert code == 0 and "serve" in out
    code, out, _ = await run_cli("serve", "--help", cwd=tmp_path)
    assert code == 0
    for option in ("--upstream", "--host", "--port", "--config"):
        assert option in out


async def test_a_corrupt_key_file_is_a_clear_error(tmp_path):
    (tmp_path / "privacy-proxy.key").write_text("c2hvcnQ=\n")  # 5 bytes, not 32
    code, out, err = await run_cli(
        "serve", "--upstream", "http://127.0.0.1:9/v1", "--port", str(free_port()), cwd=tmp_path
    )
    assert code != 0
    assert "encryption key must be 32 bytes" in err
    assert "Traceback" not in err + out and "c2hvcnQ" not in err + out


def test_the_command_module_imports_no_server_or_storage_library():
    """Every process the proxy spawns imports the console script's module again: a detector worker
    that also loaded aiohttp, SQLAlchemy and cryptography carried ~55 MB it never used."""
    import subprocess

    heavy = ("aiohttp", "sqlalchemy", "alembic", "cryptography", "pydantic", "spacy", "presidio_analyzer")
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, proxy.cli; print(' '.join(m.split('.')[0] for m in sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert not set(heavy) & set(loaded)
