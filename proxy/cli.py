"""The ``privacy-proxy`` command. Thin: parse options, load settings, hand over to proxy.app.

Every process the proxy spawns (detector workers, the log process) imports this module again
(multiprocessing's spawn re-imports the main module): only click is imported at the top, so that a
detector worker carries no aiohttp, SQLAlchemy or cryptography (~55 MB each), and the log
commands (storage, SQLAlchemy) are loaded when one of them runs.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import TYPE_CHECKING

import click

from proxy import log_safety

if TYPE_CHECKING:
    from aiohttp import web

    from config import Settings


def _settings_or_exit(config: str | None, **overrides: object) -> Settings:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from config import ConfigFileError, load_settings

    try:
        return load_settings(config, **overrides)
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from None
    except SettingsError as exc:  # names the field, never the value
        raise click.ClickException(
            f"{exc}: lists and maps in the environment are JSON, e.g. "
            """PRIVACY_PROXY_RESPONSE_REDACT_TYPES='["EMAIL_ADDRESS", "PHONE_NUMBER"]'"""
        ) from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise click.ClickException(f"invalid settings: {problems}") from None


class _LazyGroup(click.Group):
    """A group whose subcommands named in ``lazy`` ("module:attribute") are imported when used
    (click's documented pattern for lazily loaded subcommands)."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
            module, _, attribute = self._lazy[name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self._lazy[name]} is not a click command")
            return command
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, lazy={name: f"proxy.cli_audit:{name}" for name in ("db", "keys", "audit")})
@click.version_option(package_name="privacy-proxy")
def main() -> None:
    """privacy-proxy: a privacy gateway for LLM APIs."""


@main.command()
@click.option("--upstream", help="Upstream base URL, e.g. https://api.openai.com/v1 [env PRIVACY_PROXY_UPSTREAM]")
@click.option("--host", help="Address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, help="Port to listen on (default 8080)")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML or TOML settings file")
def serve(upstream: str | None, host: str | None, port: int | None, config: str | None) -> None:
    """Run the proxy in the foreground until SIGTERM/SIGINT (in-flight requests are drained)."""
    settings = _settings_or_exit(config, upstream=upstream, host=host, port=port)
    if not settings.upstream and not settings.upstreams:
        raise click.ClickException("no upstream: pass --upstream URL or set PRIVACY_PROXY_UPSTREAM (or `upstreams`)")
    log_safety.configure(settings.log_level, settings.log_format)
    from config import unknown_environment_variables

    for name in unknown_environment_variables():
        logging.getLogger("privacy_proxy").warning("%s is not a setting: ignored (misspelt?)", name)
    from proxy.app import create_app
    from storage.crypto import KeyError_

    app = create_app(settings)
    logging.getLogger("privacy_proxy").info("forwarding to %s", log_safety.without_password(settings.upstream))
    try:
        _run(app, settings)
    except KeyError_ as exc:
        raise click.ClickException(f"log encryption key: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {settings.host}:{settings.port}: {exc.strerror or exc}") from None


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), help="YAML or TOML settings file")
@click.option("--egress", is_flag=True, help="Run where the application runs: can it reach LLM providers directly?")
@click.option("--host", "hosts", multiple=True, help="With --egress: another HOST[:PORT] that must be unreachable")
def check(config: str | None, egress: bool, hosts: tuple[str, ...]) -> None:
    """Check the installation (settings, key, model, database, upstreams), or the sidecar's egress.

    Exit status 0 when everything is fine, 1 otherwise.
    """
    import asyncio

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from config import ConfigFileError, load_settings
    from proxy.checks import egress_checks, installation_checks

    if egress:
        try:
            settings = load_settings(config)
        except (ConfigFileError, ValidationError, SettingsError):
            settings = None  # the application's side needs no proxy settings
        results = asyncio.run(egress_checks(settings, hosts))
    else:
        settings = _settings_or_exit(config)
        logging.basicConfig(level=logging.ERROR)  # Presidio's notes on other languages are noise here
        results = asyncio.run(installation_checks(settings))
    for result in results:
        click.echo(f"{'ok' if result.ok else 'PROBLEM'}: {result.name}: {result.detail}")
    if not egress:
        from config import unknown_environment_variables

        for name in unknown_environment_variables():
            click.echo(f"warning: environment: {name} is not a setting and is ignored (misspelt?)")
    failed = [r for r in results if not r.ok]
    if egress:
        verdict = "the providers are reachable only through the proxy" if not failed else "the proxy can be bypassed"
    else:
        verdict = "ready to serve" if not failed else f"{len(failed)} problem(s)"
    click.echo(verdict)
    sys.exit(1 if failed else 0)


def _run(app: web.Application, settings: Settings) -> None:
    from aiohttp import web

    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout,
        handler_cancellation=True,  # a client that hangs up cancels its upstream call
        access_log=None,
        print=lambda message: logging.getLogger("privacy_proxy").info(message.strip()),
    )
