"""One Redis client per process, and the key names every app uses (all under REDIS_PREFIX)."""

from functools import cache

import redis
from django.conf import settings


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2)


def key(*parts) -> str:
    return ":".join([settings.REDIS_PREFIX, *map(str, parts)])
