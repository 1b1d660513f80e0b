"""`privacy-proxy db|keys|audit` as an auditor runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import stat
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

from proxy.cli import main
from storage import ChainAppender, ExchangeRecord, KeyAccess, make_engine, new_record_id, upgrade_schema
from storage.crypto import new_key_text
from storage.keys import parse_keys
from storage.models import ExchangeRow

PERSON, EMAIL = "Jane Roe", "jane.roe@example.com"  # synthetic
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_(\d+|REDACTED)>")


def chat_record(person: str = PERSON, email: str = EMAIL, consent: bool = True) -> ExchangeRecord:
    original = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Write to {person} at {email}."}]}
    sanitized = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Write to <PERSON_1> at <EMAIL_ADDRESS_1>."}],
    }
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"Dear {person}, noted."}}]}
    return ExchangeRecord(
        id=new_record_id(),
        client_id="team-a",
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini",
        status=200,
        entity_counts={"PERSON": 1, "EMAIL_ADDRESS": 1},
        original_request=json.dumps(original).encode(),
        sanitized_request=json.dumps(sanitized).encode(),
        response=json.dumps(answer).encode(),
        mapping={
            "<PERSON_1>": {"value": person, "type": "PERSON"},
            "<EMAIL_ADDRESS_1>": {"value": email, "type": "EMAIL_ADDRESS"},
        },
        training_consent=consent,
    )


@dataclass
class Log:
    env: dict[str, str]
    key_file: Path
    database_url: str

    async def run(self, *args: str) -> Result:
        runner = CliRunner()
        return await asyncio.to_thread(runner.invoke, main, list(args), env=self.env, catch_exceptions=False)

    async def write(self, *records: ExchangeRecord) -> list[str]:
        engine = make_engine(self.database_url)
        try:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            appender = ChainAppender(sessions, KeyAccess(parse_keys(self.key_file.read_text())), "proxy-test")
            await appender.append(list(records))
        finally:
            await engine.dispose()
        return [r.id for r in records]

    async def execute(self, statement) -> None:
        engine = make_engine(self.database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(statement)
        finally:
            await engine.dispose()


@pytest.fixture
async def log(database_url: str, tmp_path: Path) -> Log:
    key_file = tmp_path / "log.key"
    key_file.write_text(new_key_text() + "\n")
    env = {"PRIVACY_PROXY_DATABASE_URL": database_url, "PRIVACY_PROXY_ENCRYPTION_KEY_FILE": str(key_file)}
    engine = make_engine(database_url)
    await upgrade_schema(engine)
    await engine.dispose()
    return Log(env, key_file, database_url)


def lines(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


async def test_list_show_and_a_recorded_reveal(log: Log):
    [record_id] = await log.write(chat_record())
    listed = await log.run("audit", "list")
    assert record_id in listed.output and "EMAIL_ADDRESS=1,PERSON=1" in listed.output and PERSON not in listed.output
    [summary] = lines(await log.run("audit", "list", "--json", "--entity", "PERSON"))
    assert summary["id"] == record_id and summary["training_consent"] is True
    shown = await log.run("audit", "show", record_id)
    assert shown.exit_code == 0 and "<PERSON_1>" in shown.output
    assert PERSON not in shown.output and EMAIL not in shown.output  # sanitized answer too
    refused = await log.run("audit", "show", record_id, "--reveal")
    assert refused.exit_code == 2 and "--reason" in refused.output
    revealed = await log.run("audit", "show", record_id, "--reveal", "--reason", "ticket 7")
    assert PERSON in revealed.output and EMAIL in revealed.output
    [action] = lines(await log.run("audit", "list", "--actions", "--json"))
    assert (action["kind"], action["target"]) == ("reveal", record_id)


async def test_verify_passes_then_catches_an_edit_with_exit_status_1(log: Log):
    [record_id, _] = await log.write(chat_record(), chat_record())
    ok = await log.run("audit", "verify")
    assert ok.exit_code == 0 and "OK" in ok.output
    await log.execute(update(ExchangeRow).where(ExchangeRow.id == record_id).values(status=404))
    failed = await log.run("audit", "verify")
    assert failed.exit_code == 1 and f"record {record_id}" in failed.output and "FAILED" in failed.output


async def test_rotate_then_retire_the_old_key(log: Log):
    [record_id] = await log.write(chat_record())
    old_id = parse_keys(log.key_file.read_text()).active_id
    rotated = await log.run("keys", "rotate")
    assert rotated.exit_code == 0 and "rewrapped 1 record key(s) and 2 log secret(s)" in rotated.output
    keyring = parse_keys(log.key_file.read_text())
    assert keyring.active_id != old_id and old_id in keyring.keys
    listed = await log.run("keys", "list")
    assert f"{old_id}: 0 record(s)" in listed.output
    retired = await log.run("keys", "retire", old_id)
    assert retired.exit_code == 0, retired.output
    assert list(parse_keys(log.key_file.read_text()).keys) == [keyring.active_id]
    assert (await log.run("audit", "verify")).exit_code == 0
    assert PERSON in (await log.run("audit", "show", record_id, "--reveal", "--reason", "check")).output


async def test_erase_by_subject_then_no_command_finds_it(log: Log):
    erased_id, kept_id = await log.write(chat_record(), chat_record("John Doe", "john.doe@example.org"))
    result = await log.run("audit", "erase", "--subject", "JANE.ROE@example.com", "--reason", "request 9")
    assert result.exit_code == 0 and erased_id in result.output and kept_id not in result.output
    again = await log.run("audit", "erase", "--subject", EMAIL)
    assert "erased 0 record(s)" in again.output
    shown = await log.run("audit", "show", erased_id, "--reveal", "--reason", "check")
    assert shown.exit_code == 1 and "erased" in shown.output and PERSON not in shown.output
    assert '"payloads": "erased"' in (await log.run("audit", "show", erased_id)).output
    exported = await log.run("audit", "export", "--mode", "original", "--reason", "training run 1")
    assert PERSON not in exported.stdout and "John Doe" in exported.stdout
    assert (await log.run("audit", "verify")).exit_code == 0


async def test_export_honours_consent_and_surrogates_leave_no_placeholder(log: Log):
    await log.write(chat_record(), chat_record(consent=False), chat_record("John Doe", "john.doe@example.org"))
    sanitized = lines(await log.run("audit", "export"))
    assert len(sanitized) == 2 and all("<PERSON_1>" in json.dumps(example) for example in sanitized)
    surrogates = lines(await log.run("audit", "export", "--mode", "surrogates"))
    assert len(surrogates) == 2
    for example in surrogates:
        text = json.dumps(example)
        assert not PLACEHOLDER.search(text) and PERSON not in text and "John Doe" not in text
        assert [m["role"] for m in example["messages"]] == ["user", "assistant"]
    refused = await log.run("audit", "export", "--mode", "original")
    assert refused.exit_code == 2


async def test_an_export_file_is_readable_by_its_owner_only(log: Log, tmp_path: Path):
    await log.write(chat_record())
    out = tmp_path / "original.jsonl"
    out.write_text("")
    out.chmod(0o644)  # an existing file, as a shell redirect or an earlier run leaves it
    result = await log.run("audit", "export", "--mode", "original", "--reason", "check", "--out", str(out))
    assert result.exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert PERSON in out.read_text()


async def test_show_and_export_write_a_lone_surrogate_as_an_escape(log: Log):
    """A request's JSON may hold a lone surrogate (as an escape); UTF-8 output cannot, and the
    export stopped at such a record."""
    record = chat_record()
    answer = json.loads(record.response)
    answer["choices"][0]["message"]["content"] += " \ud83d"
    [record_id] = await log.write(replace(record, response=json.dumps(answer).encode()))
    shown = await log.run("audit", "show", record_id, "--json")
    assert shown.exit_code == 0 and "\\ud83d" in shown.output
    [example] = lines(await log.run("audit", "export"))
    assert example["messages"][-1]["content"].endswith(" \ud83d")


async def test_purge_older_than(log: Log):
    [_, new_id] = await log.write(chat_record(), chat_record())
    result = await log.run("audit", "purge", "--older-than", "0s")
    assert result.exit_code == 0 and "records deleted: 2" in result.output
    assert (await log.run("audit", "verify")).exit_code == 0
    assert new_id not in (await log.run("audit", "list")).output


async def test_db_upgrade_and_current(tmp_path: Path):
    env = {"PRIVACY_PROXY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"}
    runner = CliRunner()
    before = await asyncio.to_thread(runner.invoke, main, ["db", "current"], env=env)
    assert "empty" in before.output and "needs" in before.output
    upgraded = await asyncio.to_thread(runner.invoke, main, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0 and "0001" in upgraded.output
    after = await asyncio.to_thread(runner.invoke, main, ["db", "current"], env=env)
    assert "up to date" in after.output


async def test_a_missing_key_file_is_an_error_not_a_new_key(log: Log, tmp_path: Path):
    env = {**log.env, "PRIVACY_PROXY_ENCRYPTION_KEY_FILE": str(tmp_path / "absent.key")}
    result = await asyncio.to_thread(CliRunner().invoke, main, ["audit", "verify"], env=env)
    assert result.exit_code == 1 and "no encryption key" in result.output
    assert not (tmp_path / "absent.key").exists()


async def test_erase_reads_the_subject_from_stdin(log: Log):
    [record_id] = await log.write(chat_record())
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, main, ["audit", "erase", "--subject", "-"], input=EMAIL + "\n", env=log.env
    )
    assert result.exit_code == 0 and record_id in result.output
