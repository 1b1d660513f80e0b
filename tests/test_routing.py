"""Several upstreams behind one proxy: routed by API and model name, each with its own credential."""

from __future__ import annotations

import anthropic
import openai
import pytest

from config import Settings, UpstreamConfig
from proxy.routing import Router
from tests.conftest import _serve
from tests.fake_upstream import FakeUpstream
from tests.test_proxy_chat import assert_nothing_leaked

TEXT = "Please call Jane Roe at 212-555-0147."


@pytest.fixture
async def second_upstream():
    fake = FakeUpstream()
    runner, url = await _serve(fake.app())
    yield fake, f"{url}/v1"
    await runner.cleanup()


def test_router_prefers_model_patterns_then_the_first_catch_all_of_the_api():
    settings = Settings(
        upstream="http://fallback.invalid/v1",
        upstreams={
            "vllm": UpstreamConfig(url="http://vllm.invalid/v1", api="openai", models=["llama-*"]),
            "openai": UpstreamConfig(url="http://openai.invalid/v1", api="openai"),
            "claude": UpstreamConfig(url="http://claude.invalid/v1", api="anthropic"),
        },
    )
    router = Router(settings)
    assert router.choose("openai", "llama-3.1-70b").name == "vllm"
    assert router.choose("openai", "gpt-4o").name == "openai"
    assert router.choose("anthropic", "claude-sonnet-4").name == "claude"
    only_vllm = Router(Settings(upstreams={"vllm": UpstreamConfig(url="http://v.invalid/v1", models=["llama-*"])}))
    with pytest.raises(Exception, match="no configured upstream"):
        only_vllm.choose("openai", "gpt-4o")


async def test_one_proxy_serves_both_sdks_and_routes_by_model(make_proxy, upstream, second_upstream):
    anthropic_fake, anthropic_url = second_upstream
    local_fake = FakeUpstream()
    runner, local_url = await _serve(local_fake.app())
    try:
        proxy = await make_proxy(
            upstream=None,
            upstreams={
                "local": {"url": f"{local_url}/v1", "api": "openai", "models": ["llama-*"]},
                "openai": {"url": upstream.url, "api": "openai", "api_key": "sk-openai-config"},
                "anthropic": {"url": anthropic_url, "api": "anthropic", "api_key": "sk-ant-config"},
            },
        )
        oa = openai.AsyncOpenAI(base_url=proxy.base_url, api_key="sk-client", max_retries=0)
        an = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="sk-client", max_retries=0)
        async with oa, an:
            gpt = await oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TEXT}])
            llama = await oa.chat.completions.create(model="llama-3.1-8b", messages=[{"role": "user", "content": TEXT}])
            claude = await an.messages.create(
                model="claude-sonnet-4", max_tokens=100, messages=[{"role": "user", "content": TEXT}]
            )
        assert gpt.choices[0].message.content == TEXT and llama.choices[0].message.content == TEXT
        assert claude.content[0].text == TEXT
        assert [r.path for r in upstream.fake.received] == ["/v1/chat/completions"]
        assert [r.path for r in local_fake.received] == ["/v1/chat/completions"]
        assert [r.path for r in anthropic_fake.received] == ["/v1/messages"]
        assert upstream.fake.received[0].headers["Authorization"] == "Bearer sk-openai-config"
        assert anthropic_fake.received[0].headers["x-api-key"] == "sk-ant-config"
        # an upstream with its own key never sees the client's; one without (auto) gets the client's
        assert local_fake.received[0].headers["Authorization"] == "Bearer sk-client"
        for received in (*upstream.fake.received, *anthropic_fake.received):
            assert "sk-client" not in str(received.headers)
        for received in (*upstream.fake.received, *local_fake.received, *anthropic_fake.received):
            assert_nothing_leaked(received.raw, ["Jane Roe", "212-555-0147"])
    finally:
        await runner.cleanup()
