"""Property tests: the engine against a naive reference model (reference_model.py), and invariants."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matching.engine import (
    BUY,
    FILLED,
    OPEN,
    PARTIALLY_FILLED,
    REJECTED,
    SELL,
    OrderBook,
)

from .reference_model import RefBook

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

STPS = ("cancel_newest", "cancel_oldest", "cancel_both", "none")
TIFS = ("GTC", "IOC", "FOK")


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
