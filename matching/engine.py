"""Pure-Python, integer-only limit order book and matching engine.

One :class:`OrderBook` per market.  Everything inside the engine is an ``int``:
``price`` is a number of ticks, ``quantity`` a number of lots and a quote amount
("notional", ``spent``, ``quote_budget``) is ``price * quantity`` in
tick*lot units.  The caller converts Decimals before and after.

The engine is deterministic (no clocks, no randomness, no hashing of
unordered sets): the same sequence of commands always yields the same events.

A command the engine cannot process raises ``ValueError`` before it changes
anything: every argument is checked before the first write to the book, so
the caller can reject that one order and carry on with the same book (the
shard worker does, see matching/worker.py).

Data layout (chosen for speed, see ``matching/bench.py``):

* an order record is a small ``list``::

      [remaining, filled, spent, order_id, owner, price, side, stp]
        0          1       2      3         4      5      6     7

  ``remaining == 0`` on a record that is still inside a level queue marks it
  as dead (lazily canceled); it is dropped when it reaches the head of the
  queue or when the level is compacted/deleted.
* a price level is a ``list``::

      [total_live_lots, deque_of_records, price, dead_records_in_queue]

* per side, a dict ``key -> level`` and a sorted ``list`` of keys with the
  best key LAST (``key = price`` for bids, ``key = -price`` for asks), so the
  best level is ``keys[-1]`` and removing it is ``keys.pop()``.

The hot paths use literal indices into those lists (see the layout above).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass

__all__ = [
    "BUY",
    "SELL",
    "OPEN",
    "PARTIALLY_FILLED",
    "FILLED",
    "CANCELED",
    "EXPIRED",
    "REJECTED",
    "GTC",
    "IOC",
    "FOK",
    "STP_CANCEL_NEWEST",
    "STP_CANCEL_OLDEST",
    "STP_CANCEL_BOTH",
    "STP_NONE",
    "Trade",
    "OrderUpdate",
    "OrderBook",
]

BUY, SELL = "buy", "sell"

OPEN = "open"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELED = "canceled"
EXPIRED = "expired"
REJECTED = "rejected"

GTC, IOC, FOK = "GTC", "IOC", "FOK"

STP_CANCEL_NEWEST = "cancel_newest"
STP_CANCEL_OLDEST = "cancel_oldest"
STP_CANCEL_BOTH = "cancel_both"
STP_NONE = "none"

# reasons
R_POST_ONLY = "post_only_would_cross"
R_FOK = "fok_not_fillable"
R_SELF_TRADE = "self_trade"
R_NO_LIQUIDITY = "no_liquidity"
R_IOC = "ioc_remainder"
R_UNKNOWN = "unknown_order"
R_USER = "canceled_by_user"

_TIFS = frozenset((GTC, IOC, FOK))
_STPS = frozenset((STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH, STP_NONE))

# "No limit" for market orders without a protection price: every key is >= it.
_MIN_KEY = -(10**40)
# "No quantity limit" for market buys given only a quote budget.
_INF_QTY = 10**40
# Compact a level's queue when it holds more than this many dead records and
# they are the majority.
_COMPACT_MIN_DEAD = 32


# Not frozen: a frozen dataclass costs ~1.1 us per construction (one
# object.__setattr__ per field) versus ~0.2 us for this one, and the engine
# builds at least one of these per command.  Treat them as read-only.
@dataclass(slots=True, unsafe_hash=True)
class Trade:
    """One fill, always at the maker's (resting order's) price."""

    maker_id: int
    taker_id: int
    maker_owner: int
    taker_owner: int
    taker_side: str
    price: int
    quantity: int


@dataclass(slots=True, unsafe_hash=True)
class OrderUpdate:
    """The state of an order after the command that touched it.

    ``filled``/``spent`` are cumulative over the order's life, ``remaining``
    is the number of lots still resting (0 unless status is open or
    partially_filled).
    """

    order_id: int
    owner: int
    status: str
    filled: int
    remaining: int
    spent: int
    reason: str = ""


class OrderBook:
    """Price-time priority order book for one market (integer units)."""

    __slots__ = (
        "symbol",
        "_orders",
        "_bid_keys",
        "_ask_keys",
        "_bid_levels",
        "_ask_levels",
    )

    def __init__(self, symbol: str = ""):
        self.symbol = symbol
        self._orders: dict[int, list] = {}
        self._bid_keys: list[int] = []  # +price, ascending: best bid last
        self._ask_keys: list[int] = []  # -price, ascending: best ask last
        self._bid_levels: dict[int, list] = {}
        self._ask_levels: dict[int, list] = {}

    # ------------------------------------------------------------------ queries

    def __contains__(self, order_id) -> bool:
        return order_id in self._orders

    def __len__(self) -> int:
        """Number of resting orders."""
        return len(self._orders)

    def __repr__(self) -> str:
        return f"<OrderBook {self.symbol!r} orders={len(self._orders)} bid={self.best_bid()} ask={self.best_ask()}>"

    def best_bid(self) -> int | None:
        k = self._bid_keys
        return k[-1] if k else None

    def best_ask(self) -> int | None:
        k = self._ask_keys
        return -k[-1] if k else None

    def level_quantity(self, *, side: str, price: int) -> int:
        """Total resting lots at one price on one side (0 when there is no such level)."""
        level = self._bid_levels.get(price) if side == BUY else self._ask_levels.get(-price)
        return level[0] if level else 0

    def depth(self, limit: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids best first, asks best first), each as (price, total lots)."""

        def side(keys, levels):
            out = []
            n = len(keys) if limit is None else min(limit, len(keys))
            for i in range(1, n + 1):
                lv = levels[keys[-i]]
                out.append((lv[2], lv[0]))
            return out

        return side(self._bid_keys, self._bid_levels), side(self._ask_keys, self._ask_levels)

    def resting_orders(self) -> list[tuple]:
        """Every resting order in priority order (bids best first, then asks
        best first) as ``(order_id, owner, side, price, remaining)``."""
        out = []
        for keys, levels in ((self._bid_keys, self._bid_levels), (self._ask_keys, self._ask_levels)):
            for key in reversed(keys):
                for r in levels[key][1]:
                    if r[0]:
                        out.append((r[3], r[4], r[6], r[5], r[0]))
        return out

    def get(self, order_id: int) -> dict | None:
        """State of a resting order, or None if it is not resting."""
        r = self._orders.get(order_id)
        if r is None:
            return None
        return {
            "order_id": r[3],
            "owner": r[4],
            "side": r[6],
            "price": r[5],
            "remaining": r[0],
            "filled": r[1],
            "spent": r[2],
            "stp": r[7],
        }

    # ----------------------------------------------------------------- commands

    def restore(
        self,
        *,
        order_id: int,
        owner: int,
        side: str,
        price: int,
        remaining: int,
        filled: int = 0,
        spent: int = 0,
        stp: str = STP_CANCEL_NEWEST,
    ) -> None:
        """Put an already-accepted resting order back at the END of its price
        level without matching (recovery; call in original priority order)."""
        if order_id in self._orders:
            raise ValueError(f"duplicate order_id {order_id!r}")
        if stp not in _STPS:
            raise ValueError(f"bad stp {stp!r}")
        if type(price) is not int or price <= 0:
            raise ValueError(f"bad price {price!r}")
        if type(remaining) is not int or remaining <= 0:
            raise ValueError(f"bad remaining {remaining!r}")
        if side == BUY:
            k = self._ask_keys
            if k and price >= -k[-1]:
                raise ValueError(f"restoring bid {order_id} at {price} would cross the book")
            key, keys, levels = price, self._bid_keys, self._bid_levels
        elif side == SELL:
            k = self._bid_keys
            if k and price <= k[-1]:
                raise ValueError(f"restoring ask {order_id} at {price} would cross the book")
            key, keys, levels = -price, self._ask_keys, self._ask_levels
        else:
            raise ValueError(f"bad side {side!r}")
        rec = [remaining, filled, spent, order_id, owner, price, side, stp]
        level = levels.get(key)
        if level is None:
            levels[key] = [remaining, deque((rec,)), price, 0]
            insort(keys, key)
        else:
            level[0] += remaining
            level[1].append(rec)
        self._orders[order_id] = rec

    def cancel(self, *, order_id: int) -> tuple[list[Trade], list[OrderUpdate]]:
        rec = self._orders.pop(order_id, None)
        if rec is None:
            return [], [OrderUpdate(order_id, -1, REJECTED, 0, 0, 0, R_UNKNOWN)]
        price = rec[5]
        if rec[6] == BUY:
            key = price
            levels = self._bid_levels
            keys = self._bid_keys
        else:
            key = -price
            levels = self._ask_levels
            keys = self._ask_keys
        level = levels[key]
        total = level[0] - rec[0]
        rec[0] = 0
        if total:
            level[0] = total
            q = level[1]
            if q[0] is rec:
                q.popleft()
                while not q[0][0]:
                    q.popleft()
                    level[3] -= 1
            elif q[-1] is rec:
                q.pop()
                while not q[-1][0]:
                    q.pop()
                    level[3] -= 1
            else:
                dead = level[3] + 1
                if dead > _COMPACT_MIN_DEAD and dead + dead > len(q):
                    level[1] = deque([r for r in q if r[0]])
                    dead = 0
                level[3] = dead
        else:
            del levels[key]
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect_left(keys, key)]
        return [], [OrderUpdate(order_id, rec[4], CANCELED, rec[1], 0, rec[2], R_USER)]

    def place(
        self,
        *,
        order_id: int,
        owner: int,
        side: str,
        price: int | None,
        quantity: int | None,
        quote_budget: int | None = None,
        tif: str = GTC,
        post_only: bool = False,
        stp: str = STP_CANCEL_NEWEST,
        market: bool = False,
    ) -> tuple[list[Trade], list[OrderUpdate]]:
        if market:
            return self._place_market(order_id, owner, side, price, quantity, quote_budget, tif, post_only, stp)
        orders = self._orders
        if order_id in orders:
            raise ValueError(f"duplicate order_id {order_id!r}")
        if price.__class__ is not int or quantity.__class__ is not int or price <= 0 or quantity <= 0:
            raise ValueError(f"limit order needs int price > 0 and int quantity > 0 (got {price!r}, {quantity!r})")
        if stp not in _STPS:
            raise ValueError(f"bad stp {stp!r}")
        if quote_budget is not None:
            raise ValueError("quote_budget is only allowed on market buys")
        if side == BUY:
            ok = self._ask_keys
            crosses = ok and -ok[-1] <= price
        elif side == SELL:
            ok = self._bid_keys
            crosses = ok and ok[-1] >= price
        else:
            raise ValueError(f"bad side {side!r}")

        if not crosses:
            # Nothing to match: the common "add near the touch" fast path.
            if tif == GTC:
                rec = [quantity, 0, 0, order_id, owner, price, side, stp]
                if side == BUY:
                    key = price
                    levels = self._bid_levels
                    keys = self._bid_keys
                else:
                    key = -price
                    levels = self._ask_levels
                    keys = self._ask_keys
                level = levels.get(key)
                if level is None:
                    levels[key] = [quantity, deque((rec,)), price, 0]
                    if not keys or keys[-1] < key:
                        keys.append(key)
                    else:
                        insort(keys, key)
                else:
                    level[0] += quantity
                    level[1].append(rec)
                orders[order_id] = rec
                return [], [OrderUpdate(order_id, owner, OPEN, 0, quantity, 0)]
            if tif == IOC:
                return [], [OrderUpdate(order_id, owner, EXPIRED, 0, 0, 0, R_IOC)]
            if tif == FOK:
                return [], [OrderUpdate(order_id, owner, EXPIRED, 0, 0, 0, R_FOK)]
            raise ValueError(f"bad tif {tif!r}")

        if post_only:
            if tif not in _TIFS:
                raise ValueError(f"bad tif {tif!r}")
            return [], [OrderUpdate(order_id, owner, REJECTED, 0, 0, 0, R_POST_ONLY)]

        limit_key = -price if side == BUY else price
        if tif == GTC:
            return self._match(order_id, owner, side, price, limit_key, quantity, None, stp, GTC)
        if tif == IOC:
            return self._match(order_id, owner, side, price, limit_key, quantity, None, stp, IOC)
        if tif == FOK:
            if not self._fok_fillable(side, limit_key, quantity, None, owner, stp):
                return [], [OrderUpdate(order_id, owner, EXPIRED, 0, 0, 0, R_FOK)]
            return self._match(order_id, owner, side, price, limit_key, quantity, None, stp, FOK)
        raise ValueError(f"bad tif {tif!r}")

    # ---------------------------------------------------------------- internals

    def _place_market(self, order_id, owner, side, price, quantity, quote_budget, tif, post_only, stp):
        if order_id in self._orders:
            raise ValueError(f"duplicate order_id {order_id!r}")
        if post_only:
            raise ValueError("a market order cannot be post-only")
        if stp not in _STPS:
            raise ValueError(f"bad stp {stp!r}")
        if tif not in _TIFS:
            raise ValueError(f"bad tif {tif!r}")
        if side == BUY:
            limit_key = _MIN_KEY if price is None else -price
        elif side == SELL:
            if quote_budget is not None:
                raise ValueError("quote_budget is only allowed on market buys")
            limit_key = _MIN_KEY if price is None else price
        else:
            raise ValueError(f"bad side {side!r}")
        if price is not None and (price.__class__ is not int or price <= 0):
            raise ValueError(f"bad protection price {price!r}")
        if quantity is None:
            if quote_budget is None:
                raise ValueError("a market order needs quantity or quote_budget")
        elif quantity.__class__ is not int or quantity <= 0:
            raise ValueError(f"bad quantity {quantity!r}")
        if quote_budget is not None and (quote_budget.__class__ is not int or quote_budget <= 0):
            raise ValueError(f"bad quote_budget {quote_budget!r}")
        if tif == FOK:
            if not self._fok_fillable(side, limit_key, quantity, quote_budget, owner, stp):
                return [], [OrderUpdate(order_id, owner, EXPIRED, 0, 0, 0, R_FOK)]
            return self._match(order_id, owner, side, price, limit_key, quantity, quote_budget, stp, FOK, True)
        return self._match(order_id, owner, side, price, limit_key, quantity, quote_budget, stp, IOC, True)

    def _fok_fillable(self, side, limit_key, quantity, budget, owner, stp) -> bool:
        """Would the order end FILLED right now if run as IOC?  Counts only
        liquidity that would actually trade (limit, STP, budget) and mirrors
        ``_match`` step by step without touching the book.

        With a quantity: every lot must fill.  A market buy with only a quote
        budget is "filled" when it stops because the remaining budget cannot
        buy one lot of the next liquidity it meets (see ``_match``)."""
        if side == BUY:
            keys = self._ask_keys
            levels = self._ask_levels
        else:
            keys = self._bid_keys
            levels = self._bid_levels
        budget_only = quantity is None
        need = _INF_QTY if budget_only else quantity
        took_any = False
        stp_none = stp == STP_NONE
        skip_own = stp == STP_CANCEL_OLDEST
        for i in range(len(keys) - 1, -1, -1):
            key = keys[i]
            if key < limit_key:
                return False
            level = levels[key]
            lprice = level[2]
            cap = need
            if budget is not None:
                affordable = budget // lprice
                if affordable < cap:
                    if not affordable:
                        return budget_only and took_any
                    cap = affordable
            if stp_none:
                take = level[0] if level[0] < cap else cap
                consumed = take
            else:
                take = consumed = 0
                for m in level[1]:
                    mrem = m[0]
                    if not mrem:
                        continue
                    if m[4] == owner:
                        if skip_own:
                            consumed += mrem  # would be canceled
                            continue
                        # an own order stops the incoming order before it is full
                        return False
                    if take + mrem >= cap:
                        consumed += cap - take
                        take = cap
                        break
                    take += mrem
                    consumed += mrem
            need -= take
            if not need:
                return True
            if take:
                took_any = True
                if budget is not None:
                    budget -= take * lprice
            if level[0] > consumed:
                # liquidity left at this level, so the budget ran out here
                return budget_only
        return False

    def _match(self, order_id, owner, side, price, limit_key, quantity, budget, stp, tif, market=False):
        """Match an incoming order against the opposite side, then expire or
        rest its remainder.  ``limit_key`` is in the opposite side's key space
        (levels with ``key >= limit_key`` are eligible)."""
        if side == BUY:
            keys = self._ask_keys
            levels = self._ask_levels
        else:
            keys = self._bid_keys
            levels = self._bid_levels
        orders = self._orders
        trades = []
        updates = []
        tappend = trades.append
        uappend = updates.append
        remaining = quantity if quantity is not None else _INF_QTY
        filled = 0
        spent = 0
        self_trade = False
        budget_stop = False
        stp_on = stp != STP_NONE
        while keys:
            key = keys[-1]
            if key < limit_key:
                break
            level = levels[key]
            lprice = level[2]
            cap = remaining
            if budget is not None:
                affordable = budget // lprice
                if affordable < cap:
                    if not affordable:
                        budget_stop = True
                        break
                    cap = affordable
            q = level[1]
            take = 0
            while q:
                m = q[0]
                mrem = m[0]
                if not mrem:
                    q.popleft()
                    level[3] -= 1
                    continue
                if stp_on and m[4] == owner:
                    if stp != STP_CANCEL_NEWEST:
                        # cancel_oldest / cancel_both: cancel the resting order
                        q.popleft()
                        m[0] = 0
                        level[0] -= mrem
                        del orders[m[3]]
                        uappend(OrderUpdate(m[3], owner, CANCELED, m[1], 0, m[2], R_SELF_TRADE))
                        if stp == STP_CANCEL_OLDEST:
                            continue
                    self_trade = True
                    break
                f = cap - take
                if mrem <= f:
                    q.popleft()
                    m[0] = 0
                    del orders[m[3]]
                    mf = m[1] + mrem
                    ms = m[2] + mrem * lprice
                    m[1] = mf
                    m[2] = ms
                    tappend(Trade(m[3], order_id, m[4], owner, side, lprice, mrem))
                    uappend(OrderUpdate(m[3], m[4], FILLED, mf, 0, ms))
                    take += mrem
                    if take == cap:
                        break
                else:
                    mrem -= f
                    m[0] = mrem
                    mf = m[1] + f
                    ms = m[2] + f * lprice
                    m[1] = mf
                    m[2] = ms
                    tappend(Trade(m[3], order_id, m[4], owner, side, lprice, f))
                    uappend(OrderUpdate(m[3], m[4], PARTIALLY_FILLED, mf, mrem, ms))
                    take = cap
                    break
            if take:
                level[0] -= take
                remaining -= take
                filled += take
                notional = take * lprice
                spent += notional
                if budget is not None:
                    budget -= notional
            if not level[0]:
                del levels[key]
                keys.pop()
            if self_trade or not remaining:
                break

        if self_trade:
            uappend(OrderUpdate(order_id, owner, EXPIRED, filled, 0, spent, R_SELF_TRADE))
        elif not remaining:
            uappend(OrderUpdate(order_id, owner, FILLED, filled, 0, spent))
        elif market:
            if quantity is None and budget_stop and filled:
                # a quote-budget buy that spent all it usefully could
                uappend(OrderUpdate(order_id, owner, FILLED, filled, 0, spent))
            else:
                uappend(OrderUpdate(order_id, owner, EXPIRED, filled, 0, spent, R_IOC if filled else R_NO_LIQUIDITY))
        elif tif == GTC:
            rec = [remaining, filled, spent, order_id, owner, price, side, stp]
            if side == BUY:
                key = price
                olevels = self._bid_levels
                okeys = self._bid_keys
            else:
                key = -price
                olevels = self._ask_levels
                okeys = self._ask_keys
            level = olevels.get(key)
            if level is None:
                olevels[key] = [remaining, deque((rec,)), price, 0]
                insort(okeys, key)
            else:
                level[0] += remaining
                level[1].append(rec)
            orders[order_id] = rec
            uappend(OrderUpdate(order_id, owner, PARTIALLY_FILLED if filled else OPEN, filled, remaining, spent))
        else:  # IOC (a FOK that passed the pre-check always fills)
            uappend(OrderUpdate(order_id, owner, EXPIRED, filled, 0, spent, R_IOC))
        return trades, updates
