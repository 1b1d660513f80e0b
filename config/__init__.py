"""Settings: defaults, config file, environment. Imports nothing else of privacy-proxy."""

from config.settings import (
    ConfigFileError,
    Settings,
    UpstreamConfig,
    load_settings,
    read_config_file,
    unknown_environment_variables,
)

__all__ = [
    "ConfigFileError",
    "Settings",
    "UpstreamConfig",
    "load_settings",
    "read_config_file",
    "unknown_environment_variables",
]
