"""The encrypted exchange log. Never imports proxy/ or redaction/."""

from storage.crypto import DecryptionFailed, Keyring, UnknownKey
from storage.database import create_schema, make_engine, touch_heartbeat
from storage.keys import load_keyring
from storage.models import ExchangeRow
from storage.records import ExchangeRecord, new_record_id, seal, unseal
from storage.writer import LogWriter

__all__ = [
    "DecryptionFailed",
    "ExchangeRecord",
    "ExchangeRow",
    "Keyring",
    "LogWriter",
    "UnknownKey",
    "create_schema",
    "load_keyring",
    "make_engine",
    "new_record_id",
    "seal",
    "touch_heartbeat",
    "unseal",
]
