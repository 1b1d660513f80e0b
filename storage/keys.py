"""Where the log's encryption key comes from: setting, key file, or generated on first start."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from storage.crypto import KeyError_, Keyring, decode_key, new_key_text

log = logging.getLogger(__name__)


def parse_keys(text: str) -> Keyring:
    """One key, or several (one per line or comma-separated): the first is active, the others
    still read older records until ``privacy-proxy keys rotate`` has rewrapped them."""
    keys = [decode_key(part) for part in text.replace(",", "\n").split() if part.strip()]
    if not keys:
        raise KeyError_("no encryption key given")
    return Keyring.with_key(*keys)


def load_keyring(key_text: str | None, key_file: Path) -> Keyring:
    """The configured key(s) (``encryption_key``) win; else the key file, created 0600 if missing."""
    if key_text:
        return parse_keys(key_text)
    try:
        return parse_keys(key_file.read_text())
    except FileNotFoundError:
        pass
    key_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two replicas starting together must not overwrite each other's key
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return parse_keys(key_file.read_text())
    with os.fdopen(fd, "w") as handle:
        handle.write(new_key_text() + "\n")
    log.warning(
        "generated a new log encryption key in %s (mode 0600). Production should supply its own key "
        "(PRIVACY_PROXY_ENCRYPTION_KEY or encryption_key_file) and keep a copy: without it the log cannot be read.",
        key_file.resolve(),
    )
    return parse_keys(key_file.read_text())
