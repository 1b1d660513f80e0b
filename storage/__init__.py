"""The encrypted, chained audit log. Never imports proxy/ or redaction/."""

from storage.crypto import DecryptionFailed, KeyError_, Keyring, UnknownKey
from storage.database import SchemaError, create_schema, make_engine, touch_heartbeat, upgrade_schema
from storage.envelope import AuditorPrivateKey, AuditorPublicKey, KeyAccess
from storage.keys import load_keyring
from storage.models import ExchangeRow
from storage.records import ExchangeRecord, RecordErased, new_record_id, seal, unseal
from storage.writer import ChainAppender, LogWriter

__all__ = [
    "AuditorPrivateKey",
    "AuditorPublicKey",
    "ChainAppender",
    "DecryptionFailed",
    "ExchangeRecord",
    "ExchangeRow",
    "KeyAccess",
    "KeyError_",
    "Keyring",
    "LogWriter",
    "RecordErased",
    "SchemaError",
    "UnknownKey",
    "create_schema",
    "load_keyring",
    "make_engine",
    "new_record_id",
    "seal",
    "touch_heartbeat",
    "unseal",
    "upgrade_schema",
]
