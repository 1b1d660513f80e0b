"""Envelope encryption: every record has its own data key; only the data key meets a master key.

Rotating a master key rewraps the small data keys, never the payloads; erasing a record destroys
its wrapped data key, which makes its payloads noise (crypto-shredding). In write-only mode the
data key is sealed to an auditor's X25519 public key instead, so the proxy cannot read its own
history: reading needs the private key, which only the audit command is given.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.crypto import (
    KEY_BYTES,
    DecryptionFailed,
    KeyError_,
    Keyring,
    UnknownKey,
    aead_decrypt,
    aead_encrypt,
    associated_data,
)

AUDITOR_PREFIX = "x25519-"
_SEALED_VERSION = b"\x02"


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def data_key_aad(record_id: str) -> bytes:
    return associated_data("exchanges", record_id, "data_key")


def _raw_public(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def auditor_key_id(public: X25519PublicKey) -> str:
    return AUDITOR_PREFIX + hashlib.sha256(b"privacy-proxy auditor\x00" + _raw_public(public)).hexdigest()[:16]


def _derive(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(SHA256(), KEY_BYTES, salt=ephemeral + recipient, info=b"privacy-proxy seal v1").derive(shared)


def _decode_raw_key(text: str, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().replace("+", "-").replace("/", "_") + "==")
    except ValueError:
        raise KeyError_(f"{what} is not valid base64") from None
    if len(raw) != 32:
        raise KeyError_(f"{what} must be 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class AuditorPublicKey:
    """The proxy's side of write-only mode: it can seal, not open."""

    public: X25519PublicKey

    @classmethod
    def from_text(cls, text: str) -> AuditorPublicKey:
        return cls(X25519PublicKey.from_public_bytes(_decode_raw_key(text, "auditor public key")))

    @property
    def key_id(self) -> str:
        return auditor_key_id(self.public)

    def seal(self, data_key: bytes, aad: bytes) -> bytes:
        ephemeral = X25519PrivateKey.generate()
        ephemeral_raw = _raw_public(ephemeral.public_key())
        key = _derive(ephemeral.exchange(self.public), ephemeral_raw, _raw_public(self.public))
        return _SEALED_VERSION + ephemeral_raw + aead_encrypt(key, data_key, aad)


@dataclass(frozen=True)
class AuditorPrivateKey:
    """The audit command's side of write-only mode."""

    private: X25519PrivateKey

    @classmethod
    def generate(cls) -> AuditorPrivateKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str) -> AuditorPrivateKey:
        return cls(X25519PrivateKey.from_private_bytes(_decode_raw_key(text, "auditor private key")))

    def to_text(self) -> str:
        raw = self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return base64.urlsafe_b64encode(raw).decode()

    def public_text(self) -> str:
        return base64.urlsafe_b64encode(_raw_public(self.private.public_key())).decode()

    @property
    def key_id(self) -> str:
        return auditor_key_id(self.private.public_key())

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        if sealed[:1] != _SEALED_VERSION or len(sealed) < 34:
            raise DecryptionFailed("unknown sealed key format")
        ephemeral_raw = sealed[1:33]
        try:
            shared = self.private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        except ValueError:  # a low-order point: not something this proxy sealed
            raise DecryptionFailed("sealed data key is malformed") from None
        key = _derive(shared, ephemeral_raw, _raw_public(self.private.public_key()))
        return aead_decrypt(key, sealed[33:], aad)


@dataclass(frozen=True)
class KeyAccess:
    """The keys one process holds: master keys, and in write-only mode the auditor's key."""

    keyring: Keyring
    auditor_public: AuditorPublicKey | None = None  # set: new records are sealed to it
    auditor_private: AuditorPrivateKey | None = None  # set: sealed records can be read

    def wrap(self, data_key: bytes, record_id: str) -> tuple[str, bytes]:
        aad = data_key_aad(record_id)
        if self.auditor_public is not None:
            return self.auditor_public.key_id, self.auditor_public.seal(data_key, aad)
        return self.keyring.active_id, self.keyring.encrypt(data_key, aad)

    def unwrap(self, key_id: str, wrapped: bytes, record_id: str) -> bytes:
        aad = data_key_aad(record_id)
        if key_id.startswith(AUDITOR_PREFIX):
            if self.auditor_private is None or self.auditor_private.key_id != key_id:
                raise UnknownKey(f"record sealed to auditor key {key_id}: reading it needs that private key")
            return self.auditor_private.open(wrapped, aad)
        return self.keyring.decrypt(key_id, wrapped, aad)
