"""One Redis client per process, and the key names every app uses (all under REDIS_PREFIX)."""

from functools import cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry


@cache
def client() -> redis.Redis:
    # Redis down must fail a request in about a second, not hang it: short timeouts, and one retry
    # at once on a fresh connection (which heals a pooled connection Redis closed) instead of the
    # client's default of several retries with seconds of backoff.
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )


def key(*parts) -> str:
    return ":".join([settings.REDIS_PREFIX, *map(str, parts)])
