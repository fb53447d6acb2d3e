"""Rate limits: per user and per IP for the HTTP API, per connection for websocket messages.

HTTP limits count in Redis (the "default" cache), so every web process shares one count per
client: a fixed window per client and period, counted with one atomic INCR. The websocket budget
is a token bucket held by the connection itself: one connection lives in one process.
"""

from __future__ import annotations

import math
import re
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rate_parse(rate: str) -> tuple[int, int]:
    """``"600/min"`` -> (600, 60); ``"5/10s"`` -> (5, 10): requests allowed per period in seconds."""
    match = _RATE.match(rate or "")
    if match is None:
        raise ValueError(f"A rate looks like 600/min or 5/10s, not {rate!r}.")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _UNIT_SECONDS[unit]


def window_allows(scope: str, ident: str | None) -> tuple[bool, float]:
    """Count one request of ``ident`` in ``scope``'s current window: (allowed, seconds to the next window)."""
    return windows_allow(scope, [ident])[0]


def windows_allow(scope: str, idents: list[str | None]) -> list[tuple[bool, float]]:
    """``window_allows`` for several requests at once, in one round trip; ``None`` is not counted.

    The one place a limit is counted: DRF's throttles and the API's fast lane (exchange_site/fast_lane.py).
    """
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
    counted = [ident for ident in idents if ident is not None]
    if not rate or not counted:
        return [(True, 0.0)] * len(idents)
    allowed, period = rate_parse(rate)
    now = time.time()
    window = int(now // period)
    retry_after = (window + 1) * period - now
    keys = [cache.make_and_validate_key(f"throttle:{scope}:{ident}:{period}:{window}") for ident in counted]
    pipe = cache._cache.get_client(keys[0], write=True).pipeline(transaction=False)
    for key in keys:
        pipe.incr(key)
        pipe.expire(key, period + 1, nx=True)
    counts = iter(pipe.execute()[::2])
    return [(True, 0.0) if ident is None else (next(counts) <= allowed, retry_after) for ident in idents]


class WindowThrottle(BaseThrottle):
    """At most N requests per client in each fixed window of the period; the count lives in Redis."""

    scope = ""

    def client_key(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view):
        allowed, self.retry_after = window_allows(self.scope, self.client_key(request))
        return allowed

    def wait(self):
        return max(1.0, math.ceil(self.retry_after))


class UserRateThrottle(WindowThrottle):
    """Per authenticated user, however it authenticated (token, signed request, session)."""

    scope = "user"

    def client_key(self, request):
        user = getattr(request, "user", None)
        return str(user.pk) if user is not None and user.is_authenticated else None


class AnonRateThrottle(WindowThrottle):
    """Per client address for calls without a user (public market data)."""

    scope = "anon"

    def client_key(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return None
        return self.get_ident(request)


class MessageBudget:
    """A token bucket for one websocket connection: ``burst`` messages at once, refilled at ``rate``/s."""

    def __init__(self, *, burst: int, rate: float, strikes: int):
        self.burst, self.rate, self.strikes = burst, rate, strikes
        self.tokens = float(burst)
        self.refused_in_a_row = 0
        self.stamp = time.monotonic()

    def spend(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False

    @property
    def exhausted(self) -> bool:
        return self.refused_in_a_row >= self.strikes


WS_CLOSE_RATE_LIMITED = 4429


async def ws_message_refused(consumer) -> bool:
    """For a consumer's ``receive``: True when this message is over the connection's budget (drop it).

    The client is told ``rate_limited``; one that keeps sending past the budget is disconnected.
    """
    budget = getattr(consumer, "message_budget", None)
    if budget is None:
        budget = consumer.message_budget = MessageBudget(
            burst=settings.WS_MESSAGE_BURST, rate=settings.WS_MESSAGES_PER_SECOND, strikes=settings.WS_MESSAGE_STRIKES
        )
    if budget.spend():
        return False
    if budget.exhausted:
        await consumer.close(code=WS_CLOSE_RATE_LIMITED)
        return True
    await consumer.send_json(
        {"type": "error", "code": "rate_limited", "message": "Too many messages; slow down.", "channel": None}
    )
    return True
