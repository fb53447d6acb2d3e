"""Throughput benchmark for :mod:`matching.engine` (no Django needed).

    python -c "from matching.bench import run_engine_bench; print(run_engine_bench())"

The command list is generated (and checked against a shadow book so that
cancels target orders that really rest) BEFORE the timer starts; only the
loop of engine calls on a fresh book is timed.

Mix (fractions of commands):
    55%  GTC limit adds near the touch (1..5 ticks from mid, both sides)
    25%  cancels of random resting orders
    12%  marketable orders: crossing GTC/IOC limits, market by quantity,
         market buys by quote budget (with a +-5% protection price)
     3%  IOC limits around mid
     3%  FOK limits around mid (fillable or not)
     2%  post-only limits (some would cross and are rejected)
The mid price random-walks slowly; a few owners are shared so self-trade
prevention triggers now and then.
"""

from __future__ import annotations

import gc
import random
import sys
import time

from .engine import BUY, SELL, OrderBook

_STP_CHOICES = ("cancel_newest", "cancel_newest", "cancel_newest", "cancel_oldest", "cancel_both", "none")


def generate_commands(commands: int, seed: int) -> list[tuple]:
    """Command tuples:
    ``(1, order_id, owner, side, price, quantity, quote_budget, tif, post_only, stp, market)``
    for place, ``(0, order_id)`` for cancel."""
    rng = random.Random(seed)
    rand = rng.random
    randint = rng.randint
    shadow = OrderBook("shadow")
    place = shadow.place
    pool: list[int] = []  # ids that may still rest in the shadow book
    cmds: list[tuple] = []
    add = cmds.append
    mid = 100_000
    next_id = 1
    for _ in range(commands):
        if rand() < 0.02:
            mid += 1 if rand() < 0.5 else -1
        r = rand()
        if r < 0.25:
            # cancel a random resting order
            oid = None
            while pool:
                i = randint(0, len(pool) - 1)
                cand = pool[i]
                pool[i] = pool[-1]
                pool.pop()
                if cand in shadow:
                    oid = cand
                    break
            if oid is None:
                oid = next_id + 10**9  # unknown id
            shadow.cancel(order_id=oid)
            add((0, oid))
            continue
        oid = next_id
        next_id += 1
        owner = randint(1, 500)
        side = BUY if rand() < 0.5 else SELL
        stp = _STP_CHOICES[randint(0, 5)]
        quote_budget = None
        tif = "GTC"
        post_only = False
        market = False
        if r < 0.80:
            # limit add near the touch
            off = randint(1, 5)
            price = mid - off if side == BUY else mid + off
            qty = randint(1, 10)
        elif r < 0.92:
            k = rand()
            if k < 0.5:
                # marketable limit, crossing a few ticks
                off = randint(0, 4)
                price = mid + off if side == BUY else mid - off
                qty = randint(1, 25)
                tif = "GTC" if rand() < 0.5 else "IOC"
            elif k < 0.8:
                market = True
                best = shadow.best_ask() if side == BUY else shadow.best_bid()
                price = None if best is None else (best * 105 // 100 if side == BUY else best * 95 // 100)
                qty = randint(1, 25)
            else:
                market = True
                side = BUY
                best = shadow.best_ask()
                price = None if best is None else best * 105 // 100
                qty = None
                quote_budget = randint(1, 25) * mid
        elif r < 0.95:
            tif = "IOC"
            off = randint(-2, 3)
            price = mid + off if side == BUY else mid - off
            qty = randint(1, 15)
        elif r < 0.98:
            tif = "FOK"
            off = randint(-1, 4)
            price = mid + off if side == BUY else mid - off
            qty = randint(1, 40)
        else:
            post_only = True
            off = randint(-1, 4)
            price = mid - off if side == BUY else mid + off
            qty = randint(1, 10)
        place(
            order_id=oid,
            owner=owner,
            side=side,
            price=price,
            quantity=qty,
            quote_budget=quote_budget,
            tif=tif,
            post_only=post_only,
            stp=stp,
            market=market,
        )
        if oid in shadow:
            pool.append(oid)
        add((1, oid, owner, side, price, qty, quote_budget, tif, post_only, stp, market))
    return cmds


def run_engine_bench(*, commands: int = 1_000_000, seed: int = 7) -> dict:
    cmds = generate_commands(commands, seed)
    book = OrderBook("BENCH")
    place = book.place
    cancel = book.cancel
    trades = 0
    updates = 0
    gc.collect()
    t0 = time.perf_counter()
    for c in cmds:
        if c[0]:
            tr, up = place(
                order_id=c[1],
                owner=c[2],
                side=c[3],
                price=c[4],
                quantity=c[5],
                quote_budget=c[6],
                tif=c[7],
                post_only=c[8],
                stp=c[9],
                market=c[10],
            )
        else:
            tr, up = cancel(order_id=c[1])
        trades += len(tr)
        updates += len(up)
    seconds = time.perf_counter() - t0
    bids, asks = book.depth()
    return {
        "commands": len(cmds),
        "seed": seed,
        "seconds": round(seconds, 4),
        "commands_per_second": round(len(cmds) / seconds) if seconds > 0 else None,
        "us_per_command": round(seconds / len(cmds) * 1e6, 3) if cmds else None,
        "trades": trades,
        "order_updates": updates,
        "resting_orders": len(book),
        "bid_levels": len(bids),
        "ask_levels": len(asks),
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run_engine_bench()))
