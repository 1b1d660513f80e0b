"""Placeholders that stay the same across the requests of one client.

Agents and the Responses API (``previous_response_id``) refer back to turns the client does not
resend; the model may quote ``<PERSON_1>`` from an earlier request. Each client (tenant) gets its
own ``PlaceholderStore``, so one tenant's mapping can never restore into another tenant's answer.
Entries are forgotten after ``ttl`` seconds without use, and beyond ``max_entries`` per tenant.
The stores live in this process's memory only (never written to disk or logs).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redaction.placeholders import PlaceholderStore


class PlaceholderVault:
    def __init__(
        self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic, max_tenants: int = 10_000
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_tenants = max_tenants
        self._clock = clock
        self._stores: dict[str, PlaceholderStore] = {}  # insertion order = least recently used first

    def store_for(self, tenant: str) -> PlaceholderStore:
        """The tenant's store, with its expired entries already forgotten."""
        now = self._clock()
        store = self._stores.pop(tenant, None)
        if store is None:
            store = PlaceholderStore(self._clock)
            while len(self._stores) >= self.max_tenants:  # forget the least recently seen tenant
                del self._stores[next(iter(self._stores))]
        else:
            store.expire(now - self.ttl, self.max_entries)
        self._stores[tenant] = store
        return store

    def sweep(self) -> None:
        """Forget expired entries of every tenant, and tenants with none left."""
        cutoff = self._clock() - self.ttl
        for tenant, store in list(self._stores.items()):
            store.expire(cutoff, self.max_entries)
            if not len(store):
                del self._stores[tenant]

    def __len__(self) -> int:
        return len(self._stores)
