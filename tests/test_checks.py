"""`privacy-proxy check`: what it reports, and its exit status, for good and broken installations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from config import load_settings
from proxy.checks import egress_checks, installation_checks
from proxy.cli import main
from tests.conftest import free_port


def settings_for(tmp_path: Path, **overrides):
    values = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'log.db'}",
        "encryption_key_file": tmp_path / "log.key",
        **overrides,
    }
    return load_settings(None, **values)


async def test_a_good_installation_passes_every_check(upstream, tmp_path: Path):
    results = await installation_checks(settings_for(tmp_path, upstream=upstream.url))
    assert all(r.ok for r in results), results
    assert {r.name for r in results} >= {"settings", "encryption key", "detector", "log database", "upstream upstream"}


async def test_each_broken_part_is_named_in_plain_words(tmp_path: Path):
    (tmp_path / "log.key").write_text("not a key\n")
    settings = settings_for(
        tmp_path,
        upstream=f"http://127.0.0.1:{free_port()}/v1",
        spacy_model="en_no_such_model",
        database_url=f"postgresql+asyncpg://nobody:secret-pw@127.0.0.1:{free_port()}/log",
    )
    problems = {r.name: r.detail for r in await installation_checks(settings) if not r.ok}
    assert set(problems) == {"encryption key", "detector", "log database", "upstream upstream"}
    assert "en_no_such_model" in problems["detector"] and "not installed" in problems["detector"]
    assert "secret-pw" not in problems["log database"] and "***" in problems["log database"]


def test_the_command_exits_1_on_a_problem_and_0_when_ready(upstream, tmp_path: Path):
    env = {
        "PRIVACY_PROXY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'log.db'}",
        "PRIVACY_PROXY_ENCRYPTION_KEY_FILE": str(tmp_path / "log.key"),
        "PRIVACY_PROXY_DETECTION": "off",
    }
    runner = CliRunner()
    missing = runner.invoke(main, ["check"], env=env)
    assert missing.exit_code == 1 and "PROBLEM: upstream: no upstream" in missing.output
    ready = runner.invoke(main, ["check"], env={**env, "PRIVACY_PROXY_UPSTREAM": upstream.url})
    assert ready.exit_code == 0 and ready.output.strip().endswith("ready to serve"), ready.output


async def test_egress_check_flags_a_provider_the_application_can_reach(tmp_path: Path):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        results = await egress_checks(None, (f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"))
    finally:
        server.close()
    by_name = {r.name: r for r in results}
    assert not by_name[f"127.0.0.1:{port}"].ok and "REACHABLE" in by_name[f"127.0.0.1:{port}"].detail
    closed = [r for name, r in by_name.items() if name.startswith("127.0.0.1") and name != f"127.0.0.1:{port}"]
    assert closed and all(r.ok for r in closed)


def test_a_misspelt_response_type_is_a_problem_not_a_guard_that_finds_nothing(tmp_path: Path):
    """A type that is no pattern type goes to the detector: one it does not know would never be
    found. The detector refuses to start (readiness stays 503); near misses of the pattern types
    ("EMAIL", which Presidio lists but en_core_web_sm never emits) are refused with the settings."""
    from pydantic import ValidationError

    from proxy.checks import check_model

    result = check_model(settings_for(tmp_path, response_redact_types=["PHONE_NUMBR", "EMAIL_ADDRESS"]))
    assert not result.ok and "'PHONE_NUMBR'" in result.detail and "response_redact_types" in result.detail
    with pytest.raises(ValidationError, match=r"EMAIL \(did you mean EMAIL_ADDRESS\?\)"):
        settings_for(tmp_path, response_block_types=["EMAIL"])


def test_a_misspelt_environment_variable_is_named_not_ignored_in_silence(upstream, tmp_path: Path):
    from config import unknown_environment_variables

    env = {"PRIVACY_PROXY_CLIENT_API_KEY": '{"app": "k"}', "PRIVACY_PROXY_PORT": "9", "PRIVACY_PROXY_CONFIG": "x"}
    assert unknown_environment_variables(env) == ["PRIVACY_PROXY_CLIENT_API_KEY"]
    cli_env = {
        "PRIVACY_PROXY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'log.db'}",
        "PRIVACY_PROXY_ENCRYPTION_KEY_FILE": str(tmp_path / "log.key"),
        "PRIVACY_PROXY_DETECTION": "off",
        "PRIVACY_PROXY_UPSTREAM": upstream.url,
        "PRIVACY_PROXY_CLIENT_API_KEY": '{"app": "k"}',
    }
    result = CliRunner().invoke(main, ["check"], env=cli_env)
    assert "warning: environment: PRIVACY_PROXY_CLIENT_API_KEY is not a setting" in result.output


def test_settings_mistakes_are_one_plain_line_not_a_traceback(tmp_path: Path):
    env = {"PRIVACY_PROXY_UPSTREAM": "http://127.0.0.1:9/v1"}
    not_json = {**env, "PRIVACY_PROXY_RESPONSE_REDACT_TYPES": "EMAIL_ADDRESS"}
    plain_list = CliRunner().invoke(main, ["check"], env=not_json)
    assert plain_list.exit_code == 1 and "lists and maps in the environment are JSON" in plain_list.output
    assert "Traceback" not in plain_list.output
    mysql = CliRunner().invoke(main, ["check"], env={**env, "PRIVACY_PROXY_DATABASE_URL": "mysql://u:pw@h/db"})
    assert mysql.exit_code == 1 and "database_url must start with sqlite+aiosqlite://" in mysql.output
    assert "pw@" not in mysql.output
