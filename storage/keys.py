"""Where the log's encryption key comes from: setting, key file, or generated on first start."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path

from storage.crypto import KeyError_, Keyring, decode_key, new_key_text

log = logging.getLogger(__name__)

_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}


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
    if _publish_new_key(key_file):
        log.warning(
            "generated a new log encryption key in %s (mode 0600). Production should supply its own key "
            "(PRIVACY_PROXY_ENCRYPTION_KEY or encryption_key_file) and keep a copy: without it the log cannot be read.",
            key_file.resolve(),
        )
    return parse_keys(key_file.read_text())


def _publish_new_key(key_file: Path) -> bool:
    """Create ``key_file`` holding a new key, unless another process got there first (False).

    Replicas that start together must agree on one key, and none may read a key file that another
    is still writing: the key is written to a private temporary file beside it, then hard-linked
    to the name, which appears complete or not at all and is never replaced.
    """
    key_text = new_key_text() + "\n"
    fd, temporary = tempfile.mkstemp(prefix=f".{key_file.name}.", dir=key_file.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key_text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, key_file)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        return _create_exclusively(key_file, key_text)
    finally:
        os.unlink(temporary)


def _create_exclusively(key_file: Path, key_text: str) -> bool:
    """The fallback where hard links are refused (some network and FUSE file systems): a replica
    starting at the same instant may find the file still empty and stop with a key error."""
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(key_text)
    return True
