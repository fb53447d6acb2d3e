"""Per-process memos of rows every request reads (API token -> user, symbol -> market), dropped at once
in every process when the rows change.

A change publishes the memo's name on a Redis channel, now and again on commit. Each process keeps
one subscriber thread (``_Watcher``) that drops the named memo when the message arrives, so a read
costs no Redis round trip. While that subscription is not up (starting, Redis restarted), reads fall
back to comparing a version value in Redis (one GET per read), which every change also sets. ``ttl``
bounds how long a change made without either (a raw UPDATE in a shell) can go unseen.

Threads: any web thread reads and fills a memo; the watcher thread only replaces memos' dicts. A
memo's dict is replaced whole when it is dropped and entries are only added, both atomic under the
GIL. A value loaded before a change committed is stored in the dict the read started with, which
the drop has already replaced, so it is never served after the drop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Hashable

from django.db import transaction

from . import redis as redis_

log = logging.getLogger("exchange_site.local_cache")

PING_SECONDS = 5.0  # a silent subscription is pinged this often, so a dead connection is noticed


def _channel() -> str:
    return redis_.key("cache", "dropped")


class _Watcher:
    """This process's subscriber: drops the memo named by each message on the channel."""

    def __init__(self):
        self.caches: dict[str, VersionedCache] = {}
        self.live = False  # subscribed: a change will reach this process without a GET per read
        self._pid: int | None = None
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        # Per process: a forked child (a Celery pool) starts its own thread.
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self.live = os.getpid(), False
                threading.Thread(target=self._run, name="memo-watcher", daemon=True).start()

    def _drop_all(self) -> None:
        for cache in list(self.caches.values()):
            cache.drop()

    def _run(self) -> None:
        while True:
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - Redis down or restarted: reads check versions meanwhile
                if self.live:
                    log.warning("memo subscription lost (%s); checking versions until it is back", exc)
                self.live = False
                time.sleep(0.5)

    def _listen(self) -> None:
        pubsub = redis_.client().pubsub()
        try:
            pubsub.subscribe(_channel())
            quiet_since = time.monotonic()
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    if time.monotonic() - quiet_since > PING_SECONDS:
                        pubsub.ping()
                        quiet_since = time.monotonic()
                    continue
                quiet_since = time.monotonic()
                if message["type"] == "subscribe":
                    # Changes made while unsubscribed were missed: start afresh, then trust the channel.
                    self._drop_all()
                    self.live = True
                elif message["type"] == "message":
                    cache = self.caches.get(message["data"].decode())
                    if cache is not None:
                        cache.drop()
        finally:
            self.live = False
            pubsub.close()


_watcher = _Watcher()


class VersionedCache:
    def __init__(self, name: str, *, ttl: float = 30.0):
        self.name = name
        self.ttl = ttl
        self._data: dict = {}
        self._version: bytes | None = None
        self._born = 0.0
        _watcher.caches[name] = self

    def _key(self) -> str:
        return redis_.key("cache", self.name, "version")

    def drop(self) -> None:
        self._data, self._born = {}, time.monotonic()

    def get(self, key: Hashable, load: Callable):
        """The memoised ``load(key)``; a ``None`` result is not remembered."""
        _watcher.ensure_running()
        now = time.monotonic()
        if not _watcher.live:
            version = redis_.client().get(self._key())
            if version != self._version:
                self._version = version
                self.drop()
        if now - self._born > self.ttl:
            self.drop()
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
        self.drop()
        self._bump()
        transaction.on_commit(self._bump, robust=True)

    def _bump(self) -> None:
        # A fresh random value, not a counter: a counter deleted (a flushed Redis) and bumped again
        # would repeat a value some process still holds.
        pipe = redis_.client().pipeline(transaction=False)
        pipe.set(self._key(), uuid.uuid4().hex)
        pipe.publish(_channel(), self.name)
        pipe.execute()
