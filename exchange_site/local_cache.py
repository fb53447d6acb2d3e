"""Per-process memos of rows every request reads (API token -> user, symbol -> market), dropped at once
in every process when the rows change.

A change sets a new version value in Redis, on commit; each read compares it (one GET) with
the one the memo was filled under and starts afresh when they differ. ``ttl`` bounds how long a change
made without the bump (a raw UPDATE in a shell) can go unseen.

Threads: any web thread reads and fills a memo. The memo dict is replaced whole on a new version and
entries are only added, both atomic under the GIL; a value loaded from the database before a change
committed lands in the dict of the old version, which the next read drops.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Hashable

from django.db import transaction

from . import redis as redis_


class VersionedCache:
    def __init__(self, name: str, *, ttl: float = 30.0):
        self.name = name
        self.ttl = ttl
        self._data: dict = {}
        self._version: bytes | None = None
        self._born = 0.0

    def _key(self) -> str:
        return redis_.key("cache", self.name, "version")

    def get(self, key: Hashable, load: Callable):
        """The memoised ``load(key)``; a ``None`` result is not remembered."""
        version = redis_.client().get(self._key())
        now = time.monotonic()
        if version != self._version or now - self._born > self.ttl:
            self._data, self._version, self._born = {}, version, now
        data = self._data
        value = data.get(key)
        if value is None:
            value = load(key)
            if value is not None:
                data[key] = value
        return value

    def invalidate(self) -> None:
        """Every process forgets this memo: now, and again once the current transaction commits.

        Now, so this connection's own next read (inside the transaction) is fresh; again on commit,
        because another process may reload the old row between the two and must drop it.
        """
        self._bump()
        transaction.on_commit(self._bump, robust=True)

    def _bump(self) -> None:
        # A fresh random value, not a counter: a counter deleted (a flushed Redis) and bumped again
        # would repeat a value some process still holds.
        redis_.client().set(self._key(), uuid.uuid4().hex)
