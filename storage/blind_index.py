"""Blind index: find a data subject's records by a keyed hash of the value, decrypting nothing.

The same person written differently (case, spacing, full-width forms) hashes the same. The key
is the log's index secret, so the index cannot be brute-forced from the database alone.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Iterable

_SPACES = re.compile(r"\s+")


def normalise_subject(value: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", value)).strip().casefold()


def subject_digest(index_key: bytes, value: str) -> bytes:
    return hmac.digest(index_key, b"subject v1\x00" + normalise_subject(value).encode(), "sha256")


def record_digests(index_key: bytes, mapping: dict[str, dict[str, str]] | None) -> set[bytes]:
    """One digest per distinct value the record's exchange replaced."""
    values: Iterable[str] = (entry.get("value", "") for entry in (mapping or {}).values())
    return {subject_digest(index_key, value) for value in values if value.strip()}
