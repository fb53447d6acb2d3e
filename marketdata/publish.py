"""What the shard worker calls after each committed batch: stored depth in Redis and websocket events.

This is on the matching hot path. Per batch it costs one Redis transaction for the depth of every
market touched, two queries for the balances of every user touched, and one channel-layer message
per group (market depth, market trades, each user), sent concurrently from one long-lived event
loop. Nothing is done per fill and nothing is written to the database.

Depth is kept as one hash per side (price -> quantity) and a sequence counter per market. A batch
changes the hashes and increments the counter in the same MULTI, and its message carries the new
sequence, so ``depth_get`` (one MULTI too) always returns levels that match their sequence, and a
websocket consumer that joins the group before it reads a snapshot can drop every message with a
sequence not above the snapshot's and miss nothing. The sequence never goes back, even across a
``depth_reset``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from decimal import Decimal

from channels.layers import get_channel_layer

from exchange_site import redis as redis_

from .format import decimal_str
from .groups import depth_group, depth_keys, trades_group, user_group
from .selectors import balances_for_users

SEND_TIMEOUT = 10  # seconds; a dead Redis must not hang the shard worker forever
SEND_CONCURRENCY = 32


def _canonical(levels) -> dict[str, str]:
    """price -> quantity with canonical strings, so "100.50" and "100.5" are one level; the last one wins."""
    return {decimal_str(Decimal(str(price))): decimal_str(Decimal(str(qty))) for price, qty in levels}


def depth_reset(*, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """Replace the stored depth of a market (worker start-up); returns the new sequence."""
    bids_key, asks_key, seq_key = depth_keys(symbol)
    levels = {"bids": _canonical(bids), "asks": _canonical(asks)}
    pipe = redis_.client().pipeline(transaction=True)
    pipe.delete(bids_key, asks_key)
    for key, side in ((bids_key, "bids"), (asks_key, "asks")):
        resting = {price: qty for price, qty in levels[side].items() if Decimal(qty) > 0}
        levels[side] = resting
        if resting:
            pipe.hset(key, mapping=resting)
    pipe.incr(seq_key)
    sequence = int(pipe.execute()[-1])
    snapshot = {
        "type": "md.depth",
        "kind": "snapshot",
        "symbol": symbol,
        "sequence": sequence,
        "bids": sorted(([p, q] for p, q in levels["bids"].items()), key=lambda lv: Decimal(lv[0]), reverse=True),
        "asks": sorted(([p, q] for p, q in levels["asks"].items()), key=lambda lv: Decimal(lv[0])),
    }
    _send([(depth_group(symbol), snapshot)])
    return sequence


def batch_publish(
    *,
    depth_changes: dict[str, dict[str, list[tuple[str, str]]]],
    trades: dict[str, list[dict]],
    orders: dict[int, list[dict]],
    fills: dict[int, list[dict]],
    balance_users: set[int],
) -> None:
    """Publish one settled batch: per market depth changes and trades, per user orders, fills, balances."""
    messages: list[tuple[str, dict]] = []
    for symbol, (sequence, changes) in _depth_apply(depth_changes).items():
        messages.append(
            (
                depth_group(symbol),
                {"type": "md.depth", "kind": "update", "symbol": symbol, "sequence": sequence, **changes},
            )
        )
    for symbol, rows in trades.items():
        if rows:
            messages.append((trades_group(symbol), {"type": "md.trades", "symbol": symbol, "trades": list(rows)}))
    balances = balances_for_users(user_ids=balance_users) if balance_users else {}
    for user_id in sorted({*orders, *fills, *balances}, key=int):
        event = {
            "type": "user.events",
            "orders": list(orders.get(user_id, ())),
            "fills": list(fills.get(user_id, ())),
            "balances": balances.get(int(user_id)),
        }
        if event["orders"] or event["fills"] or event["balances"] is not None:
            messages.append((user_group(user_id), event))
    _send(messages)


def _depth_apply(depth_changes) -> dict[str, tuple[int, dict]]:
    """Apply every market's level changes and bump each touched market's sequence in ONE transaction."""
    pipe = redis_.client().pipeline(transaction=True)
    planned: dict[str, tuple[int, dict]] = {}
    for symbol, sides in depth_changes.items():
        bids_key, asks_key, seq_key = depth_keys(symbol)
        changes = {"bids": _canonical(sides.get("bids", ())), "asks": _canonical(sides.get("asks", ()))}
        if not changes["bids"] and not changes["asks"]:
            continue
        for key, side in ((bids_key, "bids"), (asks_key, "asks")):
            resting = {price: qty for price, qty in changes[side].items() if Decimal(qty) > 0}
            gone = [price for price, qty in changes[side].items() if Decimal(qty) <= 0]
            if resting:
                pipe.hset(key, mapping=resting)
            if gone:
                pipe.hdel(key, *gone)
        pipe.incr(seq_key)
        planned[symbol] = (len(pipe) - 1, {side: [[p, q] for p, q in changes[side].items()] for side in changes})
    if not planned:
        return {}
    results = pipe.execute()
    return {symbol: (int(results[index]), changes) for symbol, (index, changes) in planned.items()}


# Sending -------------------------------------------------------------------------------------
# async_to_sync would start a new event loop (and so new Redis connections in the channel layer)
# for every batch; one loop in a daemon thread keeps the layer's connections open between batches.

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or not _loop.is_running():
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def run():
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            threading.Thread(target=run, name="marketdata-publish", daemon=True).start()
            started.wait()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


async def _send_all(messages: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    limit = asyncio.Semaphore(SEND_CONCURRENCY)

    async def send(group: str, message: dict) -> None:
        async with limit:
            await layer.group_send(group, message)

    await asyncio.gather(*(send(group, message) for group, message in messages))


def _send(messages: list[tuple[str, dict]]) -> None:
    if messages:
        asyncio.run_coroutine_threadsafe(_send_all(messages), _event_loop()).result(SEND_TIMEOUT)
