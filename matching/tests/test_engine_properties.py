"""Property tests: the engine against a naive reference model, and invariants.

The reference model keeps all resting orders in one flat list and re-sorts the
opposite side by (price, arrival seq) on every command.  FOK is modelled
independently of the engine's pre-check: it runs the order as an IOC on a
deep copy of the model and keeps the result only if the order filled.
"""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching.engine import (
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    OPEN,
    PARTIALLY_FILLED,
    REJECTED,
    SELL,
    OrderBook,
    OrderUpdate,
    Trade,
)

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

STPS = ("cancel_newest", "cancel_oldest", "cancel_both", "none")
TIFS = ("GTC", "IOC", "FOK")


# --------------------------------------------------------------------------- model


class _ModelOrder:
    def __init__(self, order_id, owner, side, price, rem, filled, spent, seq, stp):
        self.order_id = order_id
        self.owner = owner
        self.side = side
        self.price = price
        self.rem = rem
        self.filled = filled
        self.spent = spent
        self.seq = seq
        self.stp = stp


class RefBook:
    """Deliberately naive order book with the documented semantics."""

    def __init__(self):
        self.orders: list[_ModelOrder] = []
        self.seq = 0

    # queries
    def _side(self, side):
        if side == BUY:
            return sorted((o for o in self.orders if o.side == BUY), key=lambda o: (-o.price, o.seq))
        return sorted((o for o in self.orders if o.side == SELL), key=lambda o: (o.price, o.seq))

    def resting_orders(self):
        return [(o.order_id, o.owner, o.side, o.price, o.rem) for o in self._side(BUY) + self._side(SELL)]

    def depth(self):
        out = []
        for side in (BUY, SELL):
            levels: list[list[int]] = []
            for o in self._side(side):
                if levels and levels[-1][0] == o.price:
                    levels[-1][1] += o.rem
                else:
                    levels.append([o.price, o.rem])
            out.append([tuple(lv) for lv in levels])
        return tuple(out)

    def _find(self, order_id):
        for o in self.orders:
            if o.order_id == order_id:
                return o
        return None

    # commands
    def restore(self, *, order_id, owner, side, price, remaining, filled=0, spent=0, stp="cancel_newest"):
        self.seq += 1
        self.orders.append(_ModelOrder(order_id, owner, side, price, remaining, filled, spent, self.seq, stp))

    def cancel(self, *, order_id):
        o = self._find(order_id)
        if o is None:
            return [], [OrderUpdate(order_id, -1, REJECTED, 0, 0, 0, "unknown_order")]
        self.orders.remove(o)
        return [], [OrderUpdate(order_id, o.owner, CANCELED, o.filled, 0, o.spent, "canceled_by_user")]

    def place(
        self,
        *,
        order_id,
        owner,
        side,
        price,
        quantity,
        quote_budget=None,
        tif="GTC",
        post_only=False,
        stp="cancel_newest",
        market=False,
    ):
        assert self._find(order_id) is None
        opp = self._side(SELL if side == BUY else BUY)
        if post_only and not market and opp:
            best = opp[0].price
            if (side == BUY and price >= best) or (side == SELL and price <= best):
                return [], [OrderUpdate(order_id, owner, REJECTED, 0, 0, 0, "post_only_would_cross")]
        if tif == "FOK":
            trial = copy.deepcopy(self)
            trades, updates = trial._execute(order_id, owner, side, price, quantity, quote_budget, "IOC", stp, market)
            if updates[-1].status != FILLED:
                return [], [OrderUpdate(order_id, owner, EXPIRED, 0, 0, 0, "fok_not_fillable")]
            self.orders, self.seq = trial.orders, trial.seq
            return trades, updates
        trades, updates = self._execute(order_id, owner, side, price, quantity, quote_budget, tif, stp, market)
        return trades, updates

    def _execute(self, order_id, owner, side, price, quantity, budget, tif, stp, market):
        trades, updates = [], []
        remaining = quantity
        filled = spent = 0
        self_trade = budget_stop = False
        for m in self._side(SELL if side == BUY else BUY):
            if remaining is not None and remaining == 0:
                break
            if price is not None and ((side == BUY and m.price > price) or (side == SELL and m.price < price)):
                break
            if budget is not None and (budget - spent) // m.price == 0:
                budget_stop = True
                break
            if m.owner == owner and stp != "none":
                if stp in ("cancel_oldest", "cancel_both"):
                    self.orders.remove(m)
                    updates.append(OrderUpdate(m.order_id, m.owner, CANCELED, m.filled, 0, m.spent, "self_trade"))
                if stp == "cancel_oldest":
                    continue
                self_trade = True
                break
            f = m.rem
            if remaining is not None:
                f = min(f, remaining)
            if budget is not None:
                f = min(f, (budget - spent) // m.price)
            m.rem -= f
            m.filled += f
            m.spent += f * m.price
            trades.append(Trade(m.order_id, order_id, m.owner, owner, side, m.price, f))
            if m.rem == 0:
                self.orders.remove(m)
                updates.append(OrderUpdate(m.order_id, m.owner, FILLED, m.filled, 0, m.spent))
            else:
                updates.append(OrderUpdate(m.order_id, m.owner, PARTIALLY_FILLED, m.filled, m.rem, m.spent))
            filled += f
            spent += f * m.price
            if remaining is not None:
                remaining -= f
            if m.rem:
                # the maker survives: either the order is complete or the
                # budget cannot buy another lot at this price
                budget_stop = remaining is None or remaining > 0
                break
        full = remaining is not None and remaining == 0
        if self_trade:
            upd = OrderUpdate(order_id, owner, EXPIRED, filled, 0, spent, "self_trade")
        elif full:
            upd = OrderUpdate(order_id, owner, FILLED, filled, 0, spent)
        elif market:
            if quantity is None and budget_stop and filled:
                upd = OrderUpdate(order_id, owner, FILLED, filled, 0, spent)
            else:
                upd = OrderUpdate(
                    order_id, owner, EXPIRED, filled, 0, spent, "ioc_remainder" if filled else "no_liquidity"
                )
        elif tif == "GTC":
            self.seq += 1
            self.orders.append(_ModelOrder(order_id, owner, side, price, remaining, filled, spent, self.seq, stp))
            upd = OrderUpdate(order_id, owner, PARTIALLY_FILLED if filled else OPEN, filled, remaining, spent)
        else:
            upd = OrderUpdate(order_id, owner, EXPIRED, filled, 0, spent, "ioc_remainder")
        updates.append(upd)
        return trades, updates


# ---------------------------------------------------------------- command streams


def command_streams(*, prices=(96, 104), owners=3, tifs=TIFS, markets=(0, 0, 0, 0, 1, 2, 3)):
    place_cmd = st.fixed_dictionaries(
        {
            "kind": st.just("place"),
            "owner": st.integers(1, owners),
            "side": st.sampled_from((BUY, SELL)),
            "price": st.integers(*prices),
            "quantity": st.integers(1, 12),
            "tif": st.sampled_from(tifs),
            "post_only": st.booleans(),
            "stp": st.sampled_from(STPS),
            # 0 = limit, 1 = market by quantity, 2 = market buy by quote budget,
            # 3 = market buy by quantity and budget; protection price optional
            "market": st.sampled_from(markets),
            "protect": st.booleans(),
            "budget": st.integers(1, 2500),
            # "book": size the order to the opposite liquidity within its limit
            # (+delta), to hit the exact FOK / STP fillability boundaries
            "size": st.sampled_from(("free", "free", "book")),
            "delta": st.integers(-2, 1),
        }
    )
    cancel_cmd = st.fixed_dictionaries({"kind": st.just("cancel"), "pick": st.integers(0, 10**6)})
    any_cmd = st.one_of(place_cmd, place_cmd, place_cmd, cancel_cmd)
    # Hypothesis keeps lists short on average, so mix short streams with long
    # ones (long streams build deep levels: lazy deletion, mid-level cancels,
    # FOK sweeps across levels).
    return st.one_of(
        st.lists(any_cmd, min_size=1, max_size=20),
        st.lists(any_cmd, min_size=60, max_size=250),
    )


commands = command_streams()
# two owners, mostly FOK and market orders: FOK fillability with every STP mode
fok_stp_commands = command_streams(prices=(98, 102), owners=2, tifs=("GTC", "FOK", "FOK"), markets=(0, 0, 1, 2, 3))


def to_call(cmd, next_id, book):
    """Turn a generated command into (method name, kwargs)."""
    if cmd["kind"] == "cancel":
        pick = cmd["pick"]
        resting = sorted(r[0] for r in book.resting_orders())
        if pick % 4 and resting:
            # mostly a resting order (head, middle or tail of its level)
            return "cancel", {"order_id": resting[pick % len(resting)]}
        # any id ever used (resting or finished), or next_id+1 which never exists
        return "cancel", {"order_id": pick % (next_id + 1) + 1}
    kw = {
        "order_id": next_id,
        "owner": cmd["owner"],
        "side": cmd["side"],
        "price": cmd["price"],
        "quantity": cmd["quantity"],
        "tif": cmd["tif"],
        "post_only": cmd["post_only"],
        "stp": cmd["stp"],
    }
    m = cmd["market"]
    if m:
        kw["market"] = True
        kw["post_only"] = False
        if not cmd["protect"]:
            kw["price"] = None
        if m >= 2:
            kw["side"] = BUY
            kw["quote_budget"] = cmd["budget"]
            if m == 2:
                kw["quantity"] = None
    if cmd.get("size") == "book" and kw["quantity"] is not None:
        bids, asks = book.depth()
        limit = kw["price"]
        if kw["side"] == BUY:
            avail = sum(q for p, q in asks if limit is None or p <= limit)
        else:
            avail = sum(q for p, q in bids if limit is None or p >= limit)
        kw["quantity"] = max(1, avail + cmd["delta"])
    return "place", kw


def run_both(cmds, check_each=None):
    book, ref = OrderBook("T"), RefBook()
    next_id = 1
    for cmd in cmds:
        name, kw = to_call(cmd, next_id, ref)
        if name == "place":
            next_id += 1
        got = getattr(book, name)(**kw)
        want = getattr(ref, name)(**kw)
        assert got == want, (name, kw)
        assert book.resting_orders() == ref.resting_orders()
        if check_each:
            check_each(book, name, kw, got)
    assert book.depth() == ref.depth()
    return book, ref


# --------------------------------------------------------------------------- tests


@SETTINGS
@given(commands)
def test_engine_matches_reference_model(cmds):
    book, ref = run_both(cmds)
    bids, asks = book.depth()
    assert (bids, asks) == ref.depth()
    assert len(book) == len(ref.orders)


@SETTINGS
@given(fok_stp_commands)
def test_fok_and_stp_heavy_streams_match_reference_model(cmds):
    run_both(cmds)


@SETTINGS
@given(commands)
def test_invariants_after_every_command(cmds):
    book = OrderBook("INV")
    info: dict[int, dict] = {}  # order_id -> {quantity, side, price, budget, traded, notional}
    arrival: dict[int, int] = {}
    side_filled = {BUY: 0, SELL: 0}
    next_id = 1
    for cmd in cmds:
        name, kw = to_call(cmd, next_id, book)
        if name == "place":
            oid = next_id
            next_id += 1
            info[oid] = {
                "quantity": kw["quantity"],
                "side": kw["side"],
                "price": kw["price"],
                "budget": kw.get("quote_budget"),
                "traded": 0,
                "notional": 0,
                "market": kw.get("market", False),
            }
            arrival[oid] = oid
            before = {o[0] for o in book.resting_orders()}
            trades, updates = book.place(**kw)
        else:
            before = {o[0] for o in book.resting_orders()}
            trades, updates = book.cancel(**kw)
            assert trades == []

        # one update per order, incoming/canceled order last
        ids = [u.order_id for u in updates]
        assert len(ids) == len(set(ids))
        assert ids[-1] == kw["order_id"]

        for t in trades:
            assert t.quantity > 0
            taker = info[t.taker_id]
            maker = info[t.maker_id]
            assert t.taker_id == kw["order_id"]
            assert t.maker_id in before, "makers are resting orders"
            assert maker["side"] != taker["side"] == t.taker_side
            assert t.price == maker["price"], "every trade at the maker's price"
            if taker["price"] is not None:
                if t.taker_side == BUY:
                    assert t.price <= taker["price"]
                else:
                    assert t.price >= taker["price"]
            for o in (taker, maker):
                o["traded"] += t.quantity
                o["notional"] += t.quantity * t.price
                side_filled[o["side"]] += t.quantity
        assert side_filled[BUY] == side_filled[SELL]
        # trades happen best level first (no trade-through)
        prices = [t.price for t in trades]
        if trades and trades[0].taker_side == BUY:
            assert prices == sorted(prices)
        else:
            assert prices == sorted(prices, reverse=True)

        for u in updates:
            if u.owner == -1:
                assert u.status == REJECTED and u.reason == "unknown_order"
                continue
            o = info[u.order_id]
            assert u.filled == o["traded"]
            assert u.spent == o["notional"]
            q = o["quantity"]
            if u.status in (OPEN, PARTIALLY_FILLED):
                assert u.remaining > 0
                assert u.filled + u.remaining == q
                assert (u.status == OPEN) == (u.filled == 0)
            else:
                assert u.remaining == 0
                if q is not None:
                    if u.status == FILLED:
                        assert u.filled == q
                    else:
                        # the expired / canceled / rejected part is the rest
                        assert u.filled < q
                if u.status == REJECTED:
                    assert u.filled == 0
            if o["budget"] is not None:
                assert u.spent <= o["budget"]

        # the book: never crossed, levels in arrival order, depth consistent
        bb, ba = book.best_bid(), book.best_ask()
        if bb is not None and ba is not None:
            assert bb < ba
        resting = book.resting_orders()
        last_key = last_arrival = None
        for oid, _owner, side, price, rem in resting:
            assert rem > 0
            assert oid in book
            key = (side, price)
            if key == last_key:
                assert arrival[oid] > last_arrival, "same-price orders in arrival order"
            last_key, last_arrival = key, arrival[oid]
            o = info[oid]
            assert o["traded"] + rem == o["quantity"]
        bids, asks = book.depth()
        assert sum(q for _, q in bids) == sum(r[4] for r in resting if r[2] == BUY)
        assert sum(q for _, q in asks) == sum(r[4] for r in resting if r[2] == SELL)
        assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True)
        assert [p for p, _ in asks] == sorted({p for p, _ in asks})
        assert len(book) == len(resting)


@settings(SETTINGS, max_examples=120)  # two streams per example: keep it a few seconds
@given(commands, commands)
def test_restore_then_continue_is_like_never_restarted(first, second):
    """Snapshot the resting orders (in priority order) after `first`, rebuild a
    book with restore(), then feed `second` to both: identical events."""
    live = OrderBook("LIVE")
    next_id = 1
    for cmd in first:
        name, kw = to_call(cmd, next_id, live)
        if name == "place":
            next_id += 1
        getattr(live, name)(**kw)
    restored = OrderBook("RESTORED")
    for oid, owner, side, price, rem in live.resting_orders():
        st_ = live.get(oid)
        restored.restore(
            order_id=oid,
            owner=owner,
            side=side,
            price=price,
            remaining=rem,
            filled=st_["filled"],
            spent=st_["spent"],
            stp=st_["stp"],
        )
    assert restored.resting_orders() == live.resting_orders()
    assert restored.depth() == live.depth()
    for cmd in second:
        name, kw = to_call(cmd, next_id, live)
        if name == "place":
            next_id += 1
        assert getattr(live, name)(**kw) == getattr(restored, name)(**kw)
        assert live.resting_orders() == restored.resting_orders()


@SETTINGS
@given(commands)
def test_deterministic(cmds):
    def run():
        book = OrderBook()
        out = []
        next_id = 1
        for cmd in cmds:
            name, kw = to_call(cmd, next_id, book)
            if name == "place":
                next_id += 1
            out.append(getattr(book, name)(**kw))
        return out, book.resting_orders()

    assert run() == run()
