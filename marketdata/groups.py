"""Channel-layer group names and Redis keys of market data, shared by the publisher and the consumers.

Group names may hold only letters, digits, hyphens, underscores and periods and must stay under 100
characters; a symbol with anything else is escaped (and a very long one hashed) so it still maps to
exactly one valid group. The channel layer adds REDIS_PREFIX itself.
"""

from __future__ import annotations

import hashlib
import re

from exchange_site import redis as redis_

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


def _safe(symbol: str) -> str:
    escaped = _UNSAFE.sub(lambda m: f"_{ord(m.group()):x}_", symbol)
    return escaped if len(escaped) <= 60 else hashlib.sha1(symbol.encode()).hexdigest()


def depth_group(symbol: str) -> str:
    return f"md.depth.{_safe(symbol)}"


def trades_group(symbol: str) -> str:
    return f"md.trades.{_safe(symbol)}"


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


def depth_keys(symbol: str) -> tuple[str, str, str]:
    """Hash of bid levels (price -> quantity), hash of ask levels, and the depth sequence counter."""
    return (
        redis_.key("depth", symbol, "bids"),
        redis_.key("depth", symbol, "asks"),
        redis_.key("depth", symbol, "seq"),
    )
