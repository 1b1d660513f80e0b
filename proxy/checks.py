"""``privacy-proxy check``: is this installation able to run, and is its sidecar sealed?

Each check returns plain words an operator can act on. ``check`` validates what the proxy needs
at start (settings, key, model, database, upstreams); ``check --egress`` runs where the
application runs and tells whether the LLM providers can be reached directly, bypassing the proxy.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from config import Settings
from proxy.log_safety import without_password
from storage.crypto import KeyError_

# the hosted LLM APIs an application could call directly
PROVIDER_HOSTS = (
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "api.mistral.ai",
    "api.cohere.com",
    "openai.azure.com",
)
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _upstream_urls(settings: Settings) -> list[tuple[str, str]]:
    urls = [("upstream", settings.upstream)] if settings.upstream else []
    return urls + [(name, config.url) for name, config in settings.upstreams.items()]


async def reachable(host: str, port: int) -> str | None:
    """None when a TCP connection to ``host:port`` succeeds, else why it did not (in words)."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _reader, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return "no answer (timed out)"
    except socket.gaierror:
        return "name does not resolve"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    writer.close()
    return None


def check_key(settings: Settings) -> Check:
    from storage.keys import parse_keys

    try:
        if settings.encryption_key is not None:
            keyring = parse_keys(settings.encryption_key.get_secret_value())
            return Check(
                "encryption key", True, f"{len(keyring.keys)} key(s) from the settings, active {keyring.active_id}"
            )
        path = settings.encryption_key_file
        if not path.exists():
            return Check("encryption key", True, f"{path} does not exist: a key will be generated there at start")
        keyring = parse_keys(path.read_text())
        return Check("encryption key", True, f"{len(keyring.keys)} key(s) in {path}, active {keyring.active_id}")
    except (KeyError_, OSError) as exc:
        return Check("encryption key", False, str(exc))


def check_model(settings: Settings) -> Check:
    """Build the detector in this process, exactly as a worker does, and run it once."""
    if settings.detection == "off":
        return Check("detector", True, "detection is off: nothing is detected (deny list only)")
    from proxy.state import detector_config
    from redaction.detector import Detector
    from redaction.errors import DetectorUnavailable

    try:
        detector = Detector(detector_config(settings))
        detector.warm_up()
    except DetectorUnavailable as exc:
        return Check("detector", False, str(exc))
    return Check("detector", True, f"model {settings.spacy_model} loaded, {len(detector.entities)} entity types")


async def check_database(settings: Settings) -> Check:
    from storage.database import head_revision, make_engine, schema_revision

    engine = make_engine(settings.database_url)
    try:
        revision = await schema_revision(engine)
    except Exception as exc:  # the driver's message may name the host, never data
        shown = without_password(settings.database_url)
        return Check("log database", False, f"cannot open {shown}: {type(exc).__name__}")
    finally:
        await engine.dispose()
    if revision == head_revision():
        return Check("log database", True, f"{without_password(settings.database_url)} at schema {revision}")
    if settings.database_migrate:
        return Check("log database", True, f"schema {revision or 'empty'}: migrated to {head_revision()} at start")
    return Check(
        "log database", False, f"schema {revision or 'empty'}, needs {head_revision()}: run `privacy-proxy db upgrade`"
    )


def _host_port(target: str) -> tuple[str, int]:
    """``host`` or ``host:port`` (443 by default)."""
    host, _, port = target.rpartition(":") if target.count(":") == 1 else (target, "", "")
    return (host, int(port)) if port.isdigit() else (target, 443)


async def check_upstreams(settings: Settings) -> list[Check]:
    urls = _upstream_urls(settings)
    if not urls:
        return [Check("upstream", False, "no upstream: set `upstream` (or `upstreams`)")]
    results = []
    for name, url in urls:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        problem = await reachable(parts.hostname or "", port)
        shown = without_password(url)
        detail = f"{shown} answers" if problem is None else f"{shown}: {problem}"
        results.append(Check(f"upstream {name}", problem is None, detail))
    return results


async def installation_checks(settings: Settings) -> list[Check]:
    checks = [Check("settings", True, "valid"), check_key(settings)]
    checks.append(await asyncio.to_thread(check_model, settings))
    checks.append(await check_database(settings))
    checks += await check_upstreams(settings)
    return checks


async def egress_checks(settings: Settings | None, extra_hosts: tuple[str, ...] = ()) -> list[Check]:
    """From where the application runs: every provider host should be unreachable."""
    targets = [(host, 443) for host in PROVIDER_HOSTS] + [_host_port(target) for target in extra_hosts]
    for _name, url in _upstream_urls(settings) if settings is not None else []:
        parts = urlsplit(url)
        if parts.hostname and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            targets.append((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    problems = await asyncio.gather(*(reachable(host, port) for host, port in dict.fromkeys(targets)))
    return [
        Check(f"{host}:{port}", problem is not None,
              "not reachable directly" if problem is not None else "REACHABLE: the application can bypass the proxy")
        for (host, port), problem in zip(dict.fromkeys(targets), problems, strict=True)
    ]  # fmt: skip
