"""AES-256-GCM for the log: master keys (the keyring) and the primitive every layer uses.

Every ciphertext is bound to its table, record id and column through the associated data, so
a ciphertext copied into another row or column fails to decrypt instead of being misread.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT_VERSION = b"\x01"


class KeyError_(Exception):
    """Base for key problems (named so as not to shadow the builtin KeyError)."""


class UnknownKey(KeyError_):
    """A record names a key id that this keyring does not hold."""


class DecryptionFailed(KeyError_):
    """Wrong key, tampered ciphertext, or a ciphertext moved to another row or column."""


def key_id_for(key: bytes) -> str:
    """A stable, non-secret identifier of a key (stored with each record)."""
    return "k1-" + hashlib.sha256(b"privacy-proxy key id\x00" + key).hexdigest()[:16]


def decode_key(text: str) -> bytes:
    """Parse a base64 (standard or URL-safe) 32-byte key; the message never echoes the key."""
    try:
        key = base64.urlsafe_b64decode(text.strip().replace("+", "-").replace("/", "_") + "==")
    except ValueError:
        raise KeyError_("encryption key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyError_(f"encryption key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def new_key_text() -> str:
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


def associated_data(table: str, record_id: str, column: str) -> bytes:
    return f"privacy-proxy/v1\x00{table}\x00{record_id}\x00{column}".encode()


def aead_encrypt(key: bytes | AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM, a fresh nonce, the format byte in front. ``key`` may be a prepared cipher
    (sealing a record encrypts four payloads with one data key: its key schedule is built once)."""
    nonce = os.urandom(NONCE_BYTES)
    cipher = key if isinstance(key, AESGCM) else AESGCM(key)
    return FORMAT_VERSION + nonce + cipher.encrypt(nonce, plaintext, aad)


def aead_decrypt(key: bytes | AESGCM, blob: bytes, aad: bytes) -> bytes:
    if blob[:1] != FORMAT_VERSION:
        raise DecryptionFailed("unknown ciphertext format")
    nonce, ciphertext = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    cipher = key if isinstance(key, AESGCM) else AESGCM(key)
    try:
        return cipher.decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError):  # ValueError: a truncated blob (nonce too short)
        raise DecryptionFailed("ciphertext does not authenticate for this record and column") from None


@dataclass
class Keyring:
    """The keys this process can use: one active key for new records, older ones to read."""

    active_id: str
    keys: dict[str, bytes]

    @classmethod
    def with_key(cls, key: bytes, *older: bytes) -> Keyring:
        keys = {key_id_for(k): k for k in (key, *older)}
        return cls(active_id=key_id_for(key), keys=keys)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        return aead_encrypt(self.keys[self.active_id], plaintext, aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise UnknownKey(f"no key with id {key_id}")
        return aead_decrypt(key, blob, aad)
