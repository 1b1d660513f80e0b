"""Blind index: find a data subject's records by a keyed hash of the value, decrypting nothing.

The same person written differently (case, spacing, full-width forms) hashes the same, and so
does a value written with other punctuation ("4111-1111-1111-1111" and "4111 1111 1111 1111",
"+1 (212) 555-0100" and "+12125550100"): each value is indexed twice, as normalised (v1, all
records) and as its letters and digits only (compact, records written since it was added); a
lookup asks for both. The key is the log's index secret, so the index cannot be brute-forced from
the database alone.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Iterable

_SPACES = re.compile(r"\s+")
_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def normalise_subject(value: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", value)).strip().casefold()


def subject_digest(index_key: bytes, value: str) -> bytes:
    return hmac.digest(index_key, b"subject v1\x00" + normalise_subject(value).encode(), "sha256")


def compact_digest(index_key: bytes, value: str) -> bytes | None:
    """The digest of the value's letters and digits alone; None when it has none."""
    compact = _NOT_LETTER_OR_DIGIT.sub("", normalise_subject(value))
    return hmac.digest(index_key, b"subject compact\x00" + compact.encode(), "sha256") if compact else None


def subject_digests(index_key: bytes, value: str) -> set[bytes]:
    """Every digest a record holding ``value`` may be indexed under."""
    digests = {subject_digest(index_key, value), compact_digest(index_key, value)}
    return {digest for digest in digests if digest is not None}


def record_digests(index_key: bytes, mapping: dict[str, dict[str, str]] | None) -> set[bytes]:
    """The digests of each distinct value the record's exchange replaced."""
    values: Iterable[str] = (entry.get("value", "") for entry in (mapping or {}).values())
    return {digest for value in values if value.strip() for digest in subject_digests(index_key, value)}
