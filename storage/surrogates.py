"""Consistent, realistic fake values for exported training data.

Each real value is replaced by a fake of the same kind, drawn by a generator seeded with an HMAC of
the value under the log's index secret: the same person stays the same fake person across records,
runs and a whole dataset, while nobody without the secret can link a fake back to its original by
trying candidates. Never imports proxy/ or redaction/.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from typing import TYPE_CHECKING

from storage.blind_index import normalise_subject

if TYPE_CHECKING:
    from faker import Faker

_NATIONALITIES = (
    "American", "Argentinian", "Australian", "Brazilian", "British", "Canadian", "Chilean", "Chinese",
    "Dutch", "Egyptian", "Filipino", "French", "German", "Greek", "Indian", "Irish", "Italian", "Japanese",
    "Kenyan", "Korean", "Mexican", "Nigerian", "Norwegian", "Peruvian", "Polish", "Portuguese", "Spanish",
    "Swedish", "Turkish", "Vietnamese",
)  # fmt: skip
_SHAPED_TYPES = frozenset({"US_DRIVER_LICENSE", "US_PASSPORT", "US_BANK_NUMBER", "US_ITIN", "MEDICAL_LICENSE"})
_PROVIDERS = {
    "PERSON": "name",
    "EMAIL_ADDRESS": "safe_email",  # example.com/org/net: never a real mailbox
    "PHONE_NUMBER": "phone_number",
    "LOCATION": "city",
    "CREDIT_CARD": "credit_card_number",
    "IBAN_CODE": "iban",
    "US_SSN": "ssn",
    "IP_ADDRESS": "ipv4",
    "URL": "url",
    "DATE_TIME": "date",
    "ORGANIZATION": "company",
}
_MAX_ATTEMPTS = 16


class Surrogates:
    """Consistent fake values: the same (type, value) always gives the same surrogate for one key,
    across records and runs, so a person stays one (fake) person throughout a dataset. The key is
    secret so that surrogates cannot be linked back to values by trying candidates."""

    def __init__(self, key: bytes, locale: str = "en_US") -> None:
        self._key = key
        self._locale = locale
        self._faker: Faker | None = None
        self._cache: dict[tuple[str, str], str] = {}

    def value(self, entity_type: str, original: str) -> str:
        """The surrogate of ``original``; never equal to it (after normalisation)."""
        normalised = normalise_subject(original)
        cached = self._cache.get((entity_type, normalised))
        if cached is None:
            cached = self._generate(entity_type, original, f"{entity_type}\0{normalised}", avoid=normalised)
            self._cache[(entity_type, normalised)] = cached
        return cached

    def redacted(self, entity_type: str, salt: str) -> str:
        """A fake value for a ``<TYPE_REDACTED>`` marker: the model's made-up value is unknown, so
        any plausible value of the type will do, fixed by ``salt`` for reproducible exports."""
        return self._generate(entity_type, "", f"redacted\0{entity_type}\0{salt}", avoid=None)

    def _fake(self) -> Faker:
        if self._faker is None:
            from faker import Faker  # slow to import: only exports need it

            self._faker = Faker(self._locale)
        return self._faker

    def _generate(self, entity_type: str, original: str, message: str, avoid: str | None) -> str:
        fake = self._fake()
        result = ""
        for attempt in range(_MAX_ATTEMPTS):
            # attempt 0 is the documented seed; later ones only when the draw equals the original
            suffix = f"\0{attempt}" if attempt else ""
            digest = hmac.new(self._key, (message + suffix).encode(), hashlib.sha256).digest()
            fake.seed_instance(int.from_bytes(digest, "big"))
            result = _safe(_draw(fake, entity_type, original))
            if result and normalise_subject(result) != avoid:
                return result
        return result or "x"


def _draw(fake: Faker, entity_type: str, original: str) -> str:
    if entity_type == "NRP":
        return fake.random_element(_NATIONALITIES)
    if entity_type == "IP_ADDRESS" and ":" in original:
        return fake.ipv6()
    provider = _PROVIDERS.get(entity_type)
    if provider is not None:
        try:
            return str(getattr(fake, provider)())
        except AttributeError:  # a locale without this provider (ssn, iban...): fall back to shape
            return _same_shape(fake, original)
    if entity_type in _SHAPED_TYPES:
        return _same_shape(fake, original)
    return fake.bothify("??######", letters=string.ascii_uppercase)


def _same_shape(fake: Faker, original: str) -> str:
    """Random digits and letters where ``original`` has them, separators kept: an ID that looks
    like the one it stands for without revealing it."""
    if not any(c.isascii() and c.isalnum() for c in original) or len(original) > 40:
        return fake.bothify("??######", letters=string.ascii_uppercase)
    drawn = []
    for c in original:
        if c.isascii() and c.isdigit():
            drawn.append(str(fake.random_digit()))
        elif c.isascii() and c.isalpha():
            letter = fake.random_uppercase_letter()
            drawn.append(letter.lower() if c.islower() else letter)
        else:
            drawn.append(c)
    return "".join(drawn)


def _safe(value: str) -> str:
    """No angle brackets, so a surrogate can never be (or complete) a placeholder."""
    return value.replace("<", "").replace(">", "").strip()
