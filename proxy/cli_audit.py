"""``privacy-proxy db|keys|audit``: the log's operations. Thin: options in, storage/ does the work."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import click
from sqlalchemy.ext.asyncio import async_sessionmaker

from config import Settings
from storage import AuditorPrivateKey, AuditorPublicKey, KeyAccess, KeyError_, RecordErased, make_engine, unseal
from storage.audit import Auditor, Filters, get_record, list_records
from storage.crypto import Keyring, decode_key, key_id_for, new_key_text
from storage.database import SchemaError, check_schema, head_revision, schema_revision, upgrade_schema
from storage.keys import parse_keys

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r}: use a number and a unit, e.g. 30d, 12h, 90m, 2w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def parse_moment(text: str | None) -> datetime | None:
    """An ISO date/time (UTC if no zone), or a duration ago (``7d``)."""
    if text is None:
        return None
    if _DURATION.fullmatch(text.strip()):
        return datetime.now(UTC) - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use an ISO date (2026-11-26, 2026-11-26T10:00) or a duration (7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _run(coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    except BrokenPipeError:  # `... | head`: the reader is gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except (KeyError_, SchemaError, LookupError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"log database unreachable: {exc.strerror or type(exc).__name__}") from None


def audit_keyring(settings: Settings) -> Keyring:
    """The master keys, never generated here: a missing key is an error, not a fresh key."""
    if settings.encryption_key is not None:
        return parse_keys(settings.encryption_key.get_secret_value())
    try:
        return parse_keys(settings.encryption_key_file.read_text())
    except FileNotFoundError:
        raise click.ClickException(
            f"no encryption key: {settings.encryption_key_file} does not exist (set encryption_key_file or "
            "PRIVACY_PROXY_ENCRYPTION_KEY)"
        ) from None


def _key_access(settings: Settings, private_key_file: str | None) -> KeyAccess:
    private = None
    if private_key_file is not None:
        private = AuditorPrivateKey.from_text(Path(private_key_file).read_text())
    public = AuditorPublicKey.from_text(settings.auditor_public_key) if settings.auditor_public_key else None
    return KeyAccess(audit_keyring(settings), public, private)


@asynccontextmanager
async def open_log(
    settings: Settings, private_key_file: str | None = None
) -> AsyncIterator[tuple[async_sessionmaker, KeyAccess]]:
    keys = _key_access(settings, private_key_file)
    engine = make_engine(settings.database_url)
    try:
        await check_schema(engine)
        yield async_sessionmaker(engine, expire_on_commit=False), keys
    finally:
        await engine.dispose()


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (stderr), nothing otherwise (scripts, CI)."""
    if not sys.stderr.isatty() or total < 1:
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def settings_option(function: Callable) -> Callable:
    return click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML or TOML settings file")(
        function
    )


def private_key_option(function: Callable) -> Callable:
    return click.option(
        "--private-key", type=click.Path(dir_okay=False, exists=True), help="Auditor private key (write-only mode)"
    )(function)


def load(config: str | None) -> Settings:
    from proxy.cli import _settings_or_exit

    return _settings_or_exit(config)


# --- db


@click.group()
def db() -> None:
    """The log database's schema (Alembic migrations)."""


async def _revision(database_url: str, *, upgrade_first: bool) -> str | None:
    engine = make_engine(database_url)
    try:
        if upgrade_first:
            await upgrade_schema(engine)
        return await schema_revision(engine)
    finally:
        await engine.dispose()


@db.command()
@settings_option
def upgrade(config: str | None) -> None:
    """Apply every pending migration."""
    revision = _run(_revision(load(config).database_url, upgrade_first=True))
    click.echo(f"log database schema at revision {revision}")


@db.command()
@settings_option
def current(config: str | None) -> None:
    """Show the schema revision, and whether it is this version's."""
    revision = _run(_revision(load(config).database_url, upgrade_first=False))
    state = "up to date" if revision == head_revision() else f"needs `privacy-proxy db upgrade` to {head_revision()}"
    click.echo(f"{revision or 'empty'} ({state})")


# --- keys


@click.group()
def keys() -> None:
    """Master keys: list, rotate, retire; auditor key pairs for write-only mode."""


@keys.command("list")
@settings_option
def list_keys(config: str | None) -> None:
    """Configured master keys and how many records each still protects."""
    from storage.rotation import keys_in_use

    settings = load(config)
    keyring = audit_keyring(settings)

    async def go() -> dict[str, int]:
        async with open_log(settings) as (sessions, _keys):
            return await keys_in_use(sessions)

    counts = _run(go())
    for key_id in keyring.keys:
        active = " (active)" if key_id == keyring.active_id else ""
        click.echo(f"{key_id}{active}: {counts.pop(key_id, 0)} record(s)")
    for key_id, count in counts.items():
        note = "auditor key" if key_id.startswith("x25519-") else "NOT CONFIGURED: these cannot be read"
        click.echo(f"{key_id} ({note}): {count} record(s)")


@contextmanager
def _private_output(out: str) -> Iterator[TextIO]:
    """Standard output, or a file only its owner can read (exports can hold originals): created
    0600, and an existing file is narrowed to 0600 before anything is written to it."""
    if out == "-":
        with click.open_file(out, "w", encoding="utf-8") as handle:
            yield handle
        return
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yield handle


def _write_key_file(path: Path, keys_text: list[str]) -> None:
    """Replace the key file atomically, mode 0600, and on disk before the keys are used: a crash
    must never leave an empty key file behind records wrapped with its keys."""
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(keys_text) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@keys.command()
@settings_option
@click.option(
    "--no-new-key", is_flag=True, help="Only rewrap to the active (first) key, e.g. one set in the environment"
)
def rotate(config: str | None, no_new_key: bool) -> None:
    """Make a new master key active and rewrap every record's data key with it (payloads untouched)."""
    from storage.rotation import rewrap_all
    from storage.verify import count_records

    settings = load(config)
    if not no_new_key:
        if settings.encryption_key is not None:
            raise click.ClickException(
                "the keys come from the encryption_key setting: put a new key first in it "
                "(comma-separated, older keys after it), then run `privacy-proxy keys rotate --no-new-key`"
            )
        path = settings.encryption_key_file
        old = [line.strip() for line in path.read_text().split() if line.strip()] if path.exists() else []
        if not old:
            raise click.ClickException(f"no key file at {path}: nothing to rotate")
        _write_key_file(path, [new_key_text(), *old])
    keyring = audit_keyring(settings)
    click.echo(f"active key: {keyring.active_id}")

    async def go():
        async with open_log(settings) as (sessions, key_access):
            with progress_bar(await count_records(sessions), "rewrapping") as advance:
                report = await rewrap_all(sessions, keyring, advance)
            await Auditor(sessions, key_access).record_action(
                "rotate", keyring.active_id, {"rewrapped": report.rewrapped, "unreadable": len(report.unreadable)}
            )
            return report

    report = _run(go())
    click.echo(f"rewrapped {report.rewrapped} record key(s) and {report.secrets} log secret(s)")
    if report.unreadable:
        click.echo(
            f"{len(report.unreadable)} record(s) have a key that is not configured: {', '.join(report.unreadable[:10])}"
        )
        sys.exit(1)


@keys.command()
@settings_option
@click.argument("key_id")
def retire(config: str | None, key_id: str) -> None:
    """Remove an old master key from the key file once no record needs it."""
    from storage.rotation import keys_in_use

    settings = load(config)
    keyring = audit_keyring(settings)
    if key_id not in keyring.keys:
        raise click.ClickException(f"{key_id} is not a configured key")
    if key_id == keyring.active_id:
        raise click.ClickException("that is the active key: rotate first")

    async def go() -> dict[str, int]:
        async with open_log(settings) as (sessions, _keys):
            return await keys_in_use(sessions)

    if _run(go()).get(key_id):
        raise click.ClickException(f"{key_id} still protects records: run `privacy-proxy keys rotate` first")
    if settings.encryption_key is not None:
        raise click.ClickException("the keys come from the encryption_key setting: remove the key there")
    path = settings.encryption_key_file
    _write_key_file(path, [text for text in path.read_text().split() if key_id_for(decode_key(text)) != key_id])
    click.echo(f"retired {key_id}")


@keys.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Where to write the private key")
def auditor(out: str) -> None:
    """Make an auditor key pair: the proxy gets the public key, only auditors the private one."""
    private = AuditorPrivateKey.generate()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private.to_text() + "\n")
    click.echo(f"private key written to {out} (mode 0600); keep it away from the proxy")
    click.echo(f"auditor_public_key: {private.public_text()}")
    click.echo(f"key id: {private.key_id}")


# --- audit


@click.group()
def audit() -> None:
    """Read, verify, export and erase the encrypted exchange log."""


def filter_options(function: Callable) -> Callable:
    options = [
        click.option("--since", help="From this time: ISO date/time (UTC) or a duration ago (7d)"),
        click.option("--until", help="Before this time"),
        click.option("--client", help="Client name or key fingerprint"),
        click.option("--model"),
        click.option("--status", type=int, help="HTTP status"),
        click.option("--entity", help="Records where this entity type was found, e.g. PERSON"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _filters(since, until, client, model, status, entity, kind: str | None = "exchange") -> Filters:
    return Filters(parse_moment(since), parse_moment(until), client, model, status, entity, kind)


def _row_summary(row) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat(timespec="seconds"),
        "kind": row.kind,
        "client": row.client_id,
        "endpoint": row.endpoint,
        "model": row.model,
        "status": row.status,
        "outcome": row.outcome,
        "stream": row.stream,
        "latency_ms": round(row.latency_total_ms, 1),
        "entities": row.entity_counts,
        "training_consent": row.training_consent,
        "target": row.target,
        "erased": row.erased_at is not None,
        "payloads_purged": row.payload_purged_at is not None,
        "key_id": row.key_id,
        "writer": f"{row.writer_id}#{row.seq}",
    }


@audit.command("list")
@settings_option
@filter_options
@click.option("--actions", is_flag=True, help="Audit actions (reveal, erase, ...) instead of exchanges")
@click.option("--limit", type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line")
def list_(config, since, until, client, model, status, entity, actions, limit, as_json) -> None:
    """Records matching the filters, oldest first (metadata only: nothing is decrypted)."""
    settings = load(config)
    filters = _filters(since, until, client, model, status, entity)
    if actions:
        filters = Filters(filters.since, filters.until, filters.client, None, None, None, kind=None)

    async def go():
        async with open_log(settings) as (sessions, _keys):
            rows = await list_records(sessions, filters, limit)
            return [r for r in rows if not actions or r.kind != "exchange"]

    rows = _run(go())
    if as_json:
        for row in rows:
            click.echo(json.dumps(_row_summary(row)))
        return
    _print_table(rows)


def _print_table(rows) -> None:
    headers = ("ID", "CREATED (UTC)", "CLIENT", "MODEL", "STATUS", "OUTCOME", "TRAIN", "ENTITIES", "")
    lines = [
        (
            row.id,
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.client_id[:24],
            (row.model or "-")[:24] if row.kind == "exchange" else row.endpoint,
            str(row.status),
            row.outcome,
            "yes" if row.training_consent else "no",
            ",".join(f"{k}={v}" for k, v in sorted((row.entity_counts or {}).items())) or "-",
            "erased" if row.erased_at else "purged" if row.payload_purged_at else "",
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    for line in (headers, *lines):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    click.echo(f"{len(rows)} record(s)")


@audit.command()
@settings_option
@private_key_option
@click.argument("record_id")
@click.option("--reveal", is_flag=True, help="Decrypt the original request, answer and values (logged)")
@click.option("--reason", help="Why the originals are revealed (required with --reveal; recorded)")
@click.option("--json", "as_json", is_flag=True)
def show(config, private_key, record_id, reveal, reason, as_json) -> None:
    """Metadata and the sanitized exchange (what the provider saw); --reveal for the originals."""
    from storage.export import sanitized_answer

    if reveal and not (reason and reason.strip()):
        raise click.UsageError("--reveal needs --reason TEXT (it is recorded with the reveal)")
    settings = load(config)

    async def go():
        async with open_log(settings, private_key) as (sessions, keys):
            row = await get_record(sessions, record_id)
            if row is None:
                raise LookupError(f"no record {record_id}")
            if reveal:
                return row, await Auditor(sessions, keys).reveal(record_id, reason)
            try:
                return row, unseal(row, keys)
            except RecordErased:
                return row, None

    row, record = _run(go())
    out: dict[str, Any] = {"metadata": _row_summary(row)}
    if record is None:
        out["payloads"] = "erased" if row.erased_at else "purged"
    elif reveal:
        out["original_request"] = _decoded(record.original_request)
        out["response"] = _decoded(record.response)
        out["values"] = record.mapping
    else:
        out["sanitized_request"] = _decoded(record.sanitized_request)
        out["sanitized_response"] = _decoded(sanitized_answer(record))
    click.echo(_json_text(out, indent=None if as_json else 2))


def _json_text(value: Any, indent: int | None = None) -> str:
    """JSON for UTF-8 output. A lone surrogate (a request's JSON may escape one; UTF-8 cannot hold
    it) is written as an escape instead of stopping the command."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, indent=indent)
    return text


def _decoded(payload: bytes | None) -> Any:
    if payload is None:
        return None
    text = payload.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


@audit.command()
@settings_option
@private_key_option
def verify(config, private_key) -> None:
    """Check every writer's chain and that every record decrypts; exit status 1 on any problem."""
    from storage.verify import count_records, verify_log

    settings = load(config)

    async def go():
        async with open_log(settings, private_key) as (sessions, keys):
            with progress_bar(await count_records(sessions), "verifying") as advance:
                return await verify_log(sessions, keys, advance)

    report = _run(go())
    for problem in report.problems:
        click.echo(f"PROBLEM: {problem}")
    extra = f", {report.sealed_unchecked} sealed to the auditor (not decrypted)" if report.sealed_unchecked else ""
    click.echo(
        f"{report.records} record(s) from {report.writers} writer(s): {report.erased} erased, {report.purged} "
        f"purged{extra}; {len(report.problems)} problem(s)"
    )
    click.echo("OK: chain intact, every record decrypts" if report.ok else "FAILED")
    sys.exit(0 if report.ok else 1)


@audit.command()
@settings_option
@private_key_option
@filter_options
@click.option(
    "--mode", type=click.Choice(["sanitized", "surrogates", "original"]), default="sanitized", show_default=True
)
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, allow_dash=True), default="-", help="JSONL file (- = stdout)"
)
@click.option("--reason", help="Required with --mode original (recorded)")
def export(config, private_key, since, until, client, model, status, entity, mode, out, reason) -> None:
    """JSONL in OpenAI's fine-tuning chat format, from records whose client consented to training."""
    from storage.export import Surrogates, training_example

    if mode == "original" and not (reason and reason.strip()):
        raise click.UsageError("--mode original reveals the originals: give --reason TEXT (it is recorded)")
    settings = load(config)
    filters = _filters(since, until, client, model, status, entity)

    async def go(handle: TextIO) -> tuple[int, int]:
        async with open_log(settings, private_key) as (sessions, keys):
            auditor = Auditor(sessions, keys)
            surrogates = Surrogates((await auditor.log_secrets()).index_key) if mode == "surrogates" else None
            rows = [r for r in await list_records(sessions, filters) if r.training_consent and r.erased_at is None]
            # recorded before anything is decrypted, like a reveal: an export that fails midway is on record
            await auditor.record_action("export", None, {"mode": mode, "candidates": len(rows), "reason": reason})
            written = 0
            with progress_bar(len(rows), "exporting") as advance:
                for summary in rows:
                    row = await get_record(sessions, summary.id)
                    try:
                        example = None if row is None else training_example(unseal(row, keys), mode, surrogates)
                    except KeyError_:  # erased meanwhile, purged, or a key that is not configured: skipped
                        example = None
                    if example is not None:
                        handle.write(_json_text(example) + "\n")
                        written += 1
                    advance(1)
            return written, len(rows) - written

    with _private_output(out) as handle:
        written, skipped = _run(go(handle))
    click.echo(
        f"exported {written} example(s) ({mode}); skipped {skipped} (errors, other endpoints, no answer)", err=True
    )


@audit.command()
@settings_option
@click.option(
    "--subject",
    help="A value (name, e-mail, ...): every record it was found in (blind index); '-' reads it from stdin, "
    "which keeps it out of the process list and the shell history",
)
@click.option("--id", "ids", multiple=True, help="A record id (repeatable)")
@click.option("--reason", default="erasure request", show_default=True, help="Recorded with the erasure")
def erase(config, subject, ids, reason) -> None:
    """Crypto-shred records: their data keys and payloads are destroyed; the chain still verifies."""
    if bool(subject) == bool(ids):
        raise click.UsageError("give either --subject VALUE or --id ID")
    if subject == "-":
        subject = sys.stdin.readline().strip()
        if not subject:
            raise click.UsageError("--subject -: no value on standard input")
    settings = load(config)

    async def go():
        async with open_log(settings) as (sessions, keys):
            auditor = Auditor(sessions, keys)
            return await (auditor.erase_subject(subject, reason) if subject else auditor.erase(list(ids), reason))

    result = _run(go())
    click.echo(f"erased {len(result.erased)} record(s){': ' + ', '.join(result.erased) if result.erased else ''}")
    if result.already:
        click.echo(f"{len(result.already)} already erased")
    missing = set(ids) - set(result.erased) - set(result.already)
    if missing:
        click.echo(f"not found: {', '.join(sorted(missing))}")
        sys.exit(1)


@audit.command()
@settings_option
@click.option("--older-than", help="Delete whole records older than this (e.g. 30d); default: retention_metadata_days")
@click.option("--payloads-only", is_flag=True, help="Destroy only the payloads older than --older-than, keep metadata")
def purge(config, older_than, payloads_only) -> None:
    """Retention: destroy payloads and delete records past their time (settings or --older-than)."""
    settings = load(config)
    now = datetime.now(UTC)
    payload_days, record_days = settings.retention_payload_days, settings.retention_metadata_days
    payloads_before = None if payload_days is None else now - timedelta(days=payload_days)
    records_before = None if record_days is None else now - timedelta(days=record_days)
    if older_than is not None:
        cutoff = now - parse_duration(older_than)
        payloads_before, records_before = (cutoff, None) if payloads_only else (payloads_before, cutoff)
    if payloads_before is None and records_before is None:
        raise click.UsageError(
            "nothing to purge: give --older-than or set retention_payload_days / retention_metadata_days"
        )

    async def go():
        async with open_log(settings) as (sessions, keys):
            return await Auditor(sessions, keys).purge(payloads_before, records_before)

    payloads, records = _run(go())
    click.echo(f"payloads destroyed: {payloads}; records deleted: {records}")
