import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import ConfigFileError, Settings, load_settings, read_config_file


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PRIVACY_PROXY_"):
            monkeypatch.delenv(name)


def write(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


def test_defaults():
    settings = load_settings()
    assert settings.port == 8080
    assert settings.host == "127.0.0.1"
    assert settings.upstream is None
    assert settings.excluded_entities == ["DATE_TIME", "NRP"]
    assert settings.non_text_content == "block"
    assert settings.model_dump() == Settings().model_dump()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("proxy.yaml", "port: 9001\nhost: 0.0.0.0\nlog_level: DEBUG\nallow_list: [Acme Example Corp]\n"),
        ("proxy.yml", "port: 9001\nhost: 0.0.0.0\nlog_level: DEBUG\nallow_list:\n  - Acme Example Corp\n"),
        ("proxy.toml", 'port = 9001\nhost = "0.0.0.0"\nlog_level = "DEBUG"\nallow_list = ["Acme Example Corp"]\n'),
    ],
)
def test_config_file_overrides_defaults(tmp_path: Path, name: str, content: str):
    settings = load_settings(write(tmp_path / name, content))
    assert settings.port == 9001
    assert settings.host == "0.0.0.0"
    assert settings.log_level == "DEBUG"
    assert settings.allow_list == ["Acme Example Corp"]
    assert settings.shutdown_timeout == 30.0  # not in the file: default


@pytest.mark.parametrize("name", ["proxy.yaml", "proxy.toml"])
def test_precedence_command_line_over_environment_over_file_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
):
    if name.endswith(".toml"):
        content = 'port = 1001\nhost = "10.0.0.1"\nlog_level = "ERROR"\nmax_body_bytes = 1234\n'
    else:
        content = "port: 1001\nhost: 10.0.0.1\nlog_level: ERROR\nmax_body_bytes: 1234\n"
    config = write(tmp_path / name, content)
    monkeypatch.setenv("PRIVACY_PROXY_PORT", "2002")
    monkeypatch.setenv("PRIVACY_PROXY_HOST", "10.0.0.2")
    monkeypatch.setenv("PRIVACY_PROXY_SHUTDOWN_TIMEOUT", "5")

    settings = load_settings(config, port=3003, log_level=None)
    assert settings.port == 3003  # command line > environment > file
    assert settings.host == "10.0.0.2"  # environment > file
    assert settings.shutdown_timeout == 5.0  # environment > default
    assert settings.log_level == "ERROR"  # file (command line value None = not given)
    assert settings.max_body_bytes == 1234  # file > default
    assert settings.detection_timeout == 30.0  # default


def test_environment_overrides_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PRIVACY_PROXY_UPSTREAM", "https://api.example.com/v1/")
    monkeypatch.setenv("PRIVACY_PROXY_LOG_EXCHANGES", "false")
    monkeypatch.setenv("PRIVACY_PROXY_UPSTREAM_API_KEY", "sk-test-not-a-real-key")
    settings = load_settings()
    assert settings.upstream == "https://api.example.com/v1"
    assert settings.log_exchanges is False
    assert settings.upstream_api_key is not None
    assert settings.upstream_api_key.get_secret_value() == "sk-test-not-a-real-key"
    assert "sk-test-not-a-real-key" not in repr(settings)


def test_config_file_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PRIVACY_PROXY_CONFIG", str(write(tmp_path / "from-env.yaml", "port: 4004\n")))
    assert load_settings().port == 4004
    # an explicit file wins over the environment variable
    assert load_settings(write(tmp_path / "explicit.toml", "port = 5005\n")).port == 5005


def test_config_environment_variable_pointing_nowhere_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PRIVACY_PROXY_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigFileError, match=r"missing\.yaml"):
        load_settings()


def test_list_and_dict_settings_from_environment_as_json(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PRIVACY_PROXY_ALLOW_LIST", '["Acme Example Corp", "Jane Roe Foundation"]')
    monkeypatch.setenv("PRIVACY_PROXY_DENY_LIST", '["Project Falcon"]')
    monkeypatch.setenv("PRIVACY_PROXY_EXCLUDED_ENTITIES", "[]")
    monkeypatch.setenv("PRIVACY_PROXY_ENTITY_THRESHOLDS", '{"PERSON": 0.6}')
    monkeypatch.setenv("PRIVACY_PROXY_CLIENT_API_KEYS", '{"team-a": "test-key-a"}')
    settings = load_settings()
    assert settings.allow_list == ["Acme Example Corp", "Jane Roe Foundation"]
    assert settings.deny_list == ["Project Falcon"]
    assert settings.excluded_entities == []
    assert settings.entity_thresholds == {"PERSON": 0.6}
    assert settings.client_api_keys["team-a"].get_secret_value() == "test-key-a"


def test_list_from_environment_replaces_the_file_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = write(tmp_path / "proxy.yaml", "deny_list: [Alpha, Beta]\n")
    monkeypatch.setenv("PRIVACY_PROXY_DENY_LIST", '["Gamma"]')
    assert load_settings(config).deny_list == ["Gamma"]


def test_list_from_environment_must_be_json(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PRIVACY_PROXY_ALLOW_LIST", "Acme, Jane Roe")
    with pytest.raises(Exception, match=r"(?i)allow_list|json"):
        load_settings()


@pytest.mark.parametrize("url", ["api.example.com/v1", "ftp://api.example.com", "", "localhost:8000"])
def test_invalid_upstream_url_is_rejected(url: str):
    with pytest.raises(ValidationError, match="upstream"):
        load_settings(upstream=url)


def test_invalid_upstream_url_from_environment_is_rejected(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PRIVACY_PROXY_UPSTREAM", "api.example.com")
    with pytest.raises(ValidationError, match="upstream"):
        load_settings()


def test_upstream_url_is_normalised():
    assert load_settings(upstream=" http://127.0.0.1:9000/v1// ").upstream == "http://127.0.0.1:9000/v1"


def test_invalid_values_name_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValidationError, match="port"):
        load_settings(write(tmp_path / "a.yaml", "port: 70000\n"))
    with pytest.raises(ValidationError, match="log_level"):
        load_settings(log_level="LOUD")
    monkeypatch.setenv("PRIVACY_PROXY_SCORE_THRESHOLD", "2")
    with pytest.raises(ValidationError, match="score_threshold"):
        load_settings()


def test_unknown_setting_in_file_is_rejected(tmp_path: Path):
    with pytest.raises(ValidationError, match="prot"):
        load_settings(write(tmp_path / "typo.yaml", "prot: 9000\n"))


def test_missing_config_file_raises_config_file_error(tmp_path: Path):
    with pytest.raises(ConfigFileError, match=r"nope\.yaml"):
        load_settings(tmp_path / "nope.yaml")


def test_unreadable_config_file_raises_config_file_error(tmp_path: Path):
    directory = tmp_path / "dir.yaml"
    directory.mkdir()
    with pytest.raises(ConfigFileError, match=r"dir\.yaml"):
        read_config_file(directory)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("list.yaml", "- port\n- 8080\n"),
        ("scalar.yaml", "just a string with sk-test-secret\n"),
        ("number.yml", "42\n"),
    ],
)
def test_non_mapping_config_file_raises_config_file_error(tmp_path: Path, name: str, content: str):
    with pytest.raises(ConfigFileError, match="mapping") as raised:
        load_settings(write(tmp_path / name, content))
    assert "sk-test-secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.yaml", "upstream_api_key: sk-test-secret\nport: [unclosed\n"),
        ("broken.toml", 'upstream_api_key = "sk-test-secret"\nport = \n'),
    ],
)
def test_invalid_config_file_raises_without_echoing_content(tmp_path: Path, name: str, content: str):
    with pytest.raises(ConfigFileError, match=re.escape(name)) as raised:
        load_settings(write(tmp_path / name, content))
    assert "sk-test-secret" not in str(raised.value)


def test_non_utf8_config_file_raises_config_file_error(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('host = "café"\n'.encode("latin-1"))
    with pytest.raises(ConfigFileError):
        load_settings(path)


def test_empty_config_file_means_defaults(tmp_path: Path):
    assert load_settings(write(tmp_path / "empty.yaml", "")).port == 8080
    assert load_settings(write(tmp_path / "comments.yaml", "# nothing set\n")).port == 8080


def test_proxy_keys_cannot_be_forwarded_upstream_by_any_upstream():
    import pydantic

    from config import load_settings as load

    with pytest.raises(pydantic.ValidationError, match="client_api_keys cannot be combined"):
        load(
            None,
            upstream="http://u.invalid/v1",
            client_api_keys={"team": "proxy-key"},
            upstreams={"openai": {"url": "http://o.invalid/v1", "key_source": "client"}},
        )


def test_response_types_may_name_detector_types_the_detector_looks_for():
    assert load_settings(response_redact_types=["EMAIL_ADDRESS", "PERSON"]).response_redact_types[-1] == "PERSON"
    with pytest.raises(ValidationError, match="not detected"):
        load_settings(response_block_types=["NRP"])  # excluded from detection by default
    with pytest.raises(ValidationError, match="not detected"):
        upstreams = {"a": {"url": "http://x/v1", "response_redact_types": ["LOCATION"]}}
        load_settings(entities=["PERSON"], upstreams=upstreams)
    with pytest.raises(ValidationError, match="upper-case"):
        load_settings(response_redact_types=["person"])
