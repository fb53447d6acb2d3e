"""The shard command queues in Redis: a fast path that wakes the shard worker, not the record.

Commands carry only an id (``n:<id>`` place, ``c:<id>`` cancel, ``s:<market id>`` the market's
status changed); the worker reads the order or market from the database, which is the source of
truth. A command lost with Redis is found again by the worker's sweep of pending orders, cancel
requests and market statuses.

The active shard also keeps ``shard:K:alive`` set, with a time to live of a few seconds, so the
web processes can refuse orders nobody would match (``shard_alive``).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable

import redis

from exchange_site import redis as redis_

log = logging.getLogger("matching.queue")

PLACE = "n"
CANCEL = "c"
MARKET_STATUS = "s"
# Made by the worker itself (a GTD order's expire_at has come), never queued.
EXPIRE = "x"


def queue_key(shard: int) -> str:
    return redis_.key("shard", shard, "commands")


def command_push(*, shard: int, kind: str, order_id: int) -> None:
    commands_push(commands=[(shard, kind, order_id)])


def commands_push(*, commands: Iterable[tuple[int, str, int]]) -> None:
    """Queue ``(shard, kind, id)`` commands on their shards' lists in one pipelined round trip.

    Runs after the orders' commit: Redis down must not turn accepted orders into an error (and
    Django's robust on_commit cannot log a failing functools.partial: it raises instead). The
    shard's database sweep finds what could not be queued.
    """
    by_shard: dict[int, list[str]] = defaultdict(list)
    for shard, kind, order_id in commands:
        by_shard[shard].append(f"{kind}:{order_id}")
    if not by_shard:
        return
    try:
        pipe = redis_.client().pipeline(transaction=False)
        for shard, items in by_shard.items():
            pipe.rpush(queue_key(shard), *items)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning(
            "cannot queue %d commands (%s); the shards' sweep will find them", sum(map(len, by_shard.values())), exc
        )


def market_status_changed(*, shard: int, market_id: int) -> None:
    """Tell the shard, in queue order, that a market was halted or resumed (call on commit)."""
    command_push(shard=shard, kind=MARKET_STATUS, order_id=market_id)


def commands_pop(*, shard: int, count: int, timeout: float) -> list[tuple[str, int]]:
    """Up to ``count`` commands in queue order, waiting at most ``timeout`` seconds for the first."""
    client = redis_.client()
    key = queue_key(shard)
    raw = client.lpop(key, count) or []
    if not raw and timeout > 0:
        first = client.blpop([key], timeout=timeout)
        if first:
            raw = [first[1], *(client.lpop(key, count - 1) or [])]
    out = []
    for item in raw:
        kind, _, order_id = item.decode().partition(":")
        out.append((kind, int(order_id)))
    return out


def alive_key(shard: int) -> str:
    return redis_.key("shard", shard, "alive")


def shard_alive_mark(*, shard: int, pid: int, seconds: float) -> None:
    """The active shard's heartbeat: ``shard_alive`` answers yes for ``seconds`` from now."""
    redis_.client().set(alive_key(shard), pid, px=max(1, int(seconds * 1000)))


# shard -> when this process last saw its heartbeat. A yes is trusted for a second (the heartbeat
# lives SHARD_ALIVE_SECONDS), so placing orders does not read Redis for it each time; a no is not
# remembered. Any thread reads and writes it; one key's assignment is atomic under the GIL.
_alive_seen: dict[int, float] = {}
ALIVE_MEMO_SECONDS = 1.0


def shard_alive(shard: int) -> bool:
    """Has the active process of ``shard`` shown a sign of life in the last few seconds?"""
    now = time.monotonic()
    if now - _alive_seen.get(shard, -ALIVE_MEMO_SECONDS) < ALIVE_MEMO_SECONDS:
        return True
    alive = bool(redis_.client().exists(alive_key(shard)))
    if alive:
        _alive_seen[shard] = now
    return alive


def top_of_book_key(symbol: str) -> str:
    return redis_.key("top", symbol)


def top_of_book_get(*, symbol: str) -> tuple[str | None, str | None]:
    """(best bid, best ask) as published by the shard worker after its last batch."""
    bid, ask = redis_.client().hmget(top_of_book_key(symbol), ["bid", "ask"])
    return (bid.decode() if bid else None, ask.decode() if ask else None)
