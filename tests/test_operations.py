"""What a platform team relies on: /metrics without personal data, JSON log lines with request ids."""

from __future__ import annotations

import asyncio
import json
import re
import signal

import aiohttp

from tests.test_cli import cli_env, free_port, serve, wait_until_answering

NAME, EMAIL = "Jane Roe", "jane.roe@example.com"  # synthetic


async def test_metrics_count_exchanges_stages_and_entities_without_personal_data(proxy, http):
    body = {"model": "gpt-secret-model", "messages": [{"role": "user", "content": f"Write to {NAME} at {EMAIL}."}]}
    async with http.post(f"{proxy.base_url}/chat/completions", json=body) as response:
        assert response.status == 200
    async with http.post(f"{proxy.base_url}/chat/completions", data=b"{not json") as response:
        assert response.status == 400
    async with http.get(f"{proxy.url}/metrics") as response:
        assert response.status == 200 and response.content_type == "text/plain"
        text = await response.text()
    chat = 'privacy_proxy_requests_total{endpoint="/v1/chat/completions",'
    assert chat + 'outcome="ok",status="200"} 1.0' in text
    assert chat + 'outcome="invalid_json",status="400"} 1.0' in text
    assert 'privacy_proxy_entities_total{entity_type="EMAIL_ADDRESS"} 1.0' in text
    assert re.search(r'privacy_proxy_stage_seconds_count\{stage="detection"\} [12]\.0', text)
    assert "privacy_proxy_detector_ready 1.0" in text and "privacy_proxy_storage_ok 1.0" in text
    assert "privacy_proxy_detector_waiting_requests 0.0" in text
    assert re.search(r"privacy_proxy_detector_batched_jobs_total \d+\.0", text)
    for secret in ("Jane", "Roe", "jane.roe", "example.com", "gpt-secret-model"):
        assert secret not in text


async def test_upstream_failures_are_counted_by_upstream_and_kind(make_proxy, http):
    proxy = await make_proxy(upstream=f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    async with http.post(f"{proxy.base_url}/chat/completions", json=body) as response:
        assert response.status == 502
    async with http.get(f"{proxy.url}/metrics") as response:
        text = await response.text()
    assert re.search(r'privacy_proxy_upstream_errors_total\{kind="upstream_unreachable",upstream="[^"]+"\} 1\.0', text)


async def test_json_log_lines_carry_the_request_id_and_no_content(upstream, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    port = free_port()
    env = cli_env(PRIVACY_PROXY_LOG_FORMAT="json", PRIVACY_PROXY_PORT=str(port))
    async with serve(["--upstream", upstream.url], workdir, env, tmp_path / "stderr.log") as server:
        await wait_until_answering(server, port, "/readyz")
        async with aiohttp.ClientSession() as http:
            body = {"model": "m", "messages": [{"role": "user", "content": f"Write to {NAME} at {EMAIL}."}]}
            async with http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as response:
                assert response.status == 200
                request_id = response.headers["X-Privacy-Proxy-Id"]
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.process.wait(), 30) == 0
    lines = [json.loads(line) for line in server.stderr.splitlines() if line.strip()]  # every line is JSON
    [exchange] = [line for line in lines if line.get("request_id") == request_id]
    assert exchange["status"] == 200 and exchange["level"] == "INFO" and exchange["entities"]["EMAIL_ADDRESS"] == 1
    assert NAME not in server.stderr and EMAIL not in server.stderr
