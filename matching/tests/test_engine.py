"""Example-based tests of the matching engine (pure Python, no Django)."""

from __future__ import annotations

import dataclasses

import pytest

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


def U(order_id, owner, status, filled, remaining, spent, reason=""):
    return OrderUpdate(order_id, owner, status, filled, remaining, spent, reason)


def T(maker_id, taker_id, maker_owner, taker_owner, taker_side, price, quantity):
    return Trade(maker_id, taker_id, maker_owner, taker_owner, taker_side, price, quantity)


def limit(book, order_id, side, price, quantity, owner=None, **kw):
    return book.place(
        order_id=order_id, owner=order_id if owner is None else owner, side=side, price=price, quantity=quantity, **kw
    )


def market(book, order_id, side, quantity=None, owner=None, price=None, **kw):
    return book.place(
        order_id=order_id,
        owner=order_id if owner is None else owner,
        side=side,
        price=price,
        quantity=quantity,
        market=True,
        **kw,
    )


@pytest.fixture
def asks():
    """Asks 100 x 3 (id 1), 100 x 2 (id 2), 101 x 5 (id 3), 103 x 4 (id 4); bid 98 x 7 (id 5)."""
    book = OrderBook("BTC-USD")
    limit(book, 1, SELL, 100, 3)
    limit(book, 2, SELL, 100, 2)
    limit(book, 3, SELL, 101, 5)
    limit(book, 4, SELL, 103, 4)
    limit(book, 5, BUY, 98, 7)
    return book


# ------------------------------------------------------------------ basics / GTC


def test_event_types_keep_public_field_names():
    assert [f.name for f in dataclasses.fields(Trade)] == [
        "maker_id",
        "taker_id",
        "maker_owner",
        "taker_owner",
        "taker_side",
        "price",
        "quantity",
    ]
    assert [f.name for f in dataclasses.fields(OrderUpdate)] == [
        "order_id",
        "owner",
        "status",
        "filled",
        "remaining",
        "spent",
        "reason",
    ]
    assert OrderUpdate(1, 2, OPEN, 0, 5, 0).reason == ""


def test_gtc_rests_when_not_crossing():
    book = OrderBook("X")
    assert book.best_bid() is None and book.best_ask() is None
    assert limit(book, 1, BUY, 99, 5) == ([], [U(1, 1, OPEN, 0, 5, 0)])
    assert limit(book, 2, SELL, 101, 4) == ([], [U(2, 2, OPEN, 0, 4, 0)])
    assert book.best_bid() == 99 and book.best_ask() == 101
    assert 1 in book and 2 in book and 3 not in book
    assert len(book) == 2
    assert book.resting_orders() == [(1, 1, BUY, 99, 5), (2, 2, SELL, 101, 4)]


def test_gtc_sweeps_levels_best_first_at_maker_prices_then_rests(asks):
    trades, updates = limit(asks, 10, BUY, 101, 12)
    # price improvement: the taker's limit is 101, the first fills happen at 100
    assert trades == [
        T(1, 10, 1, 10, BUY, 100, 3),
        T(2, 10, 2, 10, BUY, 100, 2),
        T(3, 10, 3, 10, BUY, 101, 5),
    ]
    assert updates == [
        U(1, 1, FILLED, 3, 0, 300),
        U(2, 2, FILLED, 2, 0, 200),
        U(3, 3, FILLED, 5, 0, 505),
        U(10, 10, PARTIALLY_FILLED, 10, 2, 1005),
    ]
    # never above the limit: 103 is untouched, the remainder rests at 101
    assert asks.depth() == ([(101, 2), (98, 7)], [(103, 4)])
    assert asks.resting_orders() == [(10, 10, BUY, 101, 2), (5, 5, BUY, 98, 7), (4, 4, SELL, 103, 4)]


def test_partial_fill_of_a_maker_then_cumulative_maker_update(asks):
    assert limit(asks, 10, BUY, 100, 1) == (
        [T(1, 10, 1, 10, BUY, 100, 1)],
        [U(1, 1, PARTIALLY_FILLED, 1, 2, 100), U(10, 10, FILLED, 1, 0, 100)],
    )
    assert limit(asks, 11, BUY, 100, 3) == (
        [T(1, 11, 1, 11, BUY, 100, 2), T(2, 11, 2, 11, BUY, 100, 1)],
        [U(1, 1, FILLED, 3, 0, 300), U(2, 2, PARTIALLY_FILLED, 1, 1, 100), U(11, 11, FILLED, 3, 0, 300)],
    )


def test_sell_taker_trades_at_bid_prices_best_first():
    book = OrderBook()
    limit(book, 1, BUY, 100, 2)
    limit(book, 2, BUY, 102, 2)
    limit(book, 3, BUY, 101, 2)
    trades, updates = limit(book, 4, SELL, 101, 10)
    assert trades == [T(2, 4, 2, 4, SELL, 102, 2), T(3, 4, 3, 4, SELL, 101, 2)]
    assert updates[-1] == U(4, 4, PARTIALLY_FILLED, 4, 6, 406)
    assert book.depth() == ([(100, 2)], [(101, 6)])


def test_price_time_priority_among_same_price_orders():
    book = OrderBook()
    for oid in (1, 2, 3):
        limit(book, oid, SELL, 100, 2)
    limit(book, 4, SELL, 99, 1)  # better price comes first even though later
    trades, _ = limit(book, 5, BUY, 100, 4)
    assert [(t.maker_id, t.price, t.quantity) for t in trades] == [(4, 99, 1), (1, 100, 2), (2, 100, 1)]
    assert book.resting_orders() == [(2, 2, SELL, 100, 1), (3, 3, SELL, 100, 2)]


def test_depth_aggregates_levels_and_honours_limit():
    book = OrderBook()
    limit(book, 1, BUY, 99, 1)
    limit(book, 2, BUY, 99, 2)
    limit(book, 3, BUY, 97, 4)
    limit(book, 4, BUY, 98, 8)
    limit(book, 5, SELL, 101, 3)
    limit(book, 6, SELL, 100, 5)
    limit(book, 7, SELL, 101, 1)
    assert book.depth() == ([(99, 3), (98, 8), (97, 4)], [(100, 5), (101, 4)])
    assert book.depth(limit=2) == ([(99, 3), (98, 8)], [(100, 5), (101, 4)])
    assert book.depth(limit=1) == ([(99, 3)], [(100, 5)])
    book.cancel(order_id=1)
    book.cancel(order_id=4)
    assert book.depth() == ([(99, 2), (97, 4)], [(100, 5), (101, 4)])


def test_updates_one_per_order_maker_updates_first_incoming_last(asks):
    _, updates = limit(asks, 10, BUY, 103, 14)
    assert [u.order_id for u in updates] == [1, 2, 3, 4, 10]
    assert updates[-1] == U(10, 10, FILLED, 14, 0, 300 + 200 + 505 + 4 * 103)


# ------------------------------------------------------------------------- IOC


def test_ioc_partial_fill_expires_remainder(asks):
    trades, updates = limit(asks, 10, BUY, 100, 9, tif="IOC")
    assert sum(t.quantity for t in trades) == 5
    assert updates[-1] == U(10, 10, EXPIRED, 5, 0, 500, "ioc_remainder")
    assert 10 not in asks
    assert asks.best_ask() == 101


def test_ioc_fully_filled_and_not_crossing(asks):
    assert limit(asks, 10, BUY, 100, 3, tif="IOC")[1][-1] == U(10, 10, FILLED, 3, 0, 300)
    assert limit(asks, 11, BUY, 99, 3, tif="IOC") == ([], [U(11, 11, EXPIRED, 0, 0, 0, "ioc_remainder")])
    assert 11 not in asks


# ------------------------------------------------------------------------- FOK


def test_fok_fills_across_levels(asks):
    trades, updates = limit(asks, 10, BUY, 103, 14, tif="FOK")
    assert [(t.maker_id, t.price, t.quantity) for t in trades] == [(1, 100, 3), (2, 100, 2), (3, 101, 5), (4, 103, 4)]
    assert updates[-1] == U(10, 10, FILLED, 14, 0, 1417)
    assert asks.depth() == ([(98, 7)], [])


def test_fok_not_fillable_within_limit_leaves_book_untouched(asks):
    before = asks.resting_orders()
    # 10 lots exist at <= 101, 14 at <= 103: 11 lots at limit 101 cannot fill
    assert limit(asks, 10, BUY, 101, 11, tif="FOK") == ([], [U(10, 10, EXPIRED, 0, 0, 0, "fok_not_fillable")])
    assert limit(asks, 11, BUY, 103, 15, tif="FOK") == ([], [U(11, 11, EXPIRED, 0, 0, 0, "fok_not_fillable")])
    assert limit(asks, 12, BUY, 99, 1, tif="FOK") == ([], [U(12, 12, EXPIRED, 0, 0, 0, "fok_not_fillable")])
    assert asks.resting_orders() == before
    # exactly the available quantity at <= 101 fills
    assert limit(asks, 13, BUY, 101, 10, tif="FOK")[1][-1] == U(13, 13, FILLED, 10, 0, 1005)


def test_fok_sell_side():
    book = OrderBook()
    limit(book, 1, BUY, 100, 2)
    limit(book, 2, BUY, 99, 2)
    assert limit(book, 3, SELL, 99, 5, tif="FOK")[1] == [U(3, 3, EXPIRED, 0, 0, 0, "fok_not_fillable")]
    trades, updates = limit(book, 4, SELL, 99, 4, tif="FOK")
    assert [(t.price, t.quantity) for t in trades] == [(100, 2), (99, 2)]
    assert updates[-1] == U(4, 4, FILLED, 4, 0, 398)


# ------------------------------------------------------------------- post-only


def test_post_only_accepted_when_not_crossing(asks):
    assert limit(asks, 10, BUY, 99, 2, post_only=True) == ([], [U(10, 10, OPEN, 0, 2, 0)])
    assert limit(asks, 11, SELL, 100, 2, post_only=True) == ([], [U(11, 11, OPEN, 0, 2, 0)])
    assert asks.best_bid() == 99 and asks.best_ask() == 100
    assert asks.depth(limit=1) == ([(99, 2)], [(100, 7)])
    # it joins the back of its level
    assert [r[0] for r in asks.resting_orders() if r[3] == 100] == [1, 2, 11]


def test_post_only_rejected_when_it_would_cross(asks):
    before = asks.resting_orders()
    rej = "post_only_would_cross"
    assert limit(asks, 10, BUY, 100, 2, post_only=True) == ([], [U(10, 10, REJECTED, 0, 0, 0, rej)])  # equal price
    assert limit(asks, 11, BUY, 105, 2, post_only=True) == ([], [U(11, 11, REJECTED, 0, 0, 0, rej)])
    assert limit(asks, 12, SELL, 98, 2, post_only=True) == ([], [U(12, 12, REJECTED, 0, 0, 0, rej)])
    assert asks.resting_orders() == before
    assert 10 not in asks


def test_post_only_on_empty_side_rests():
    book = OrderBook()
    assert limit(book, 1, SELL, 100, 1, post_only=True)[1] == [U(1, 1, OPEN, 0, 1, 0)]


# ------------------------------------------------------- self-trade prevention


@pytest.fixture
def mixed():
    """Asks at 100: id 1 (owner 7) x 2, id 2 (owner 9 = self) x 3, id 3 (owner 8) x 4; 101: id 4 (owner 8) x 5."""
    book = OrderBook()
    limit(book, 1, SELL, 100, 2, owner=7)
    limit(book, 2, SELL, 100, 3, owner=9)
    limit(book, 3, SELL, 100, 4, owner=8)
    limit(book, 4, SELL, 101, 5, owner=8)
    return book


def test_stp_cancel_newest_expires_incoming_and_keeps_own_resting(mixed):
    trades, updates = limit(mixed, 10, BUY, 101, 10, owner=9)  # default stp
    assert trades == [T(1, 10, 7, 9, BUY, 100, 2)]
    assert updates == [U(1, 7, FILLED, 2, 0, 200), U(10, 9, EXPIRED, 2, 0, 200, "self_trade")]
    assert 2 in mixed and 10 not in mixed  # the GTC remainder does not rest
    assert mixed.depth() == ([], [(100, 7), (101, 5)])


def test_stp_cancel_oldest_cancels_own_maker_and_goes_on(mixed):
    trades, updates = limit(mixed, 10, BUY, 101, 10, owner=9, stp="cancel_oldest")
    assert [(t.maker_id, t.price, t.quantity) for t in trades] == [(1, 100, 2), (3, 100, 4), (4, 101, 4)]
    assert updates == [
        U(1, 7, FILLED, 2, 0, 200),
        U(2, 9, CANCELED, 0, 0, 0, "self_trade"),
        U(3, 8, FILLED, 4, 0, 400),
        U(4, 8, PARTIALLY_FILLED, 4, 1, 404),
        U(10, 9, FILLED, 10, 0, 1004),
    ]
    assert 2 not in mixed
    assert mixed.depth() == ([], [(101, 1)])


def test_stp_cancel_both(mixed):
    trades, updates = limit(mixed, 10, BUY, 101, 10, owner=9, stp="cancel_both")
    assert trades == [T(1, 10, 7, 9, BUY, 100, 2)]
    assert updates == [
        U(1, 7, FILLED, 2, 0, 200),
        U(2, 9, CANCELED, 0, 0, 0, "self_trade"),
        U(10, 9, EXPIRED, 2, 0, 200, "self_trade"),
    ]
    assert mixed.depth() == ([], [(100, 4), (101, 5)])


def test_stp_none_trades_with_itself(mixed):
    trades, updates = limit(mixed, 10, BUY, 100, 4, owner=9, stp="none")
    assert trades == [T(1, 10, 7, 9, BUY, 100, 2), T(2, 10, 9, 9, BUY, 100, 2)]
    assert updates[-1] == U(10, 9, FILLED, 4, 0, 400)


def test_stp_not_triggered_when_filled_before_reaching_own_order(mixed):
    trades, updates = limit(mixed, 10, BUY, 101, 2, owner=9)
    assert trades == [T(1, 10, 7, 9, BUY, 100, 2)]
    assert updates[-1] == U(10, 9, FILLED, 2, 0, 200)
    assert 2 in mixed


def test_stp_applies_to_market_orders(mixed):
    trades, updates = market(mixed, 10, BUY, 10, owner=9)
    assert trades == [T(1, 10, 7, 9, BUY, 100, 2)]
    assert updates[-1] == U(10, 9, EXPIRED, 2, 0, 200, "self_trade")


def test_stp_incoming_mode_governs_not_the_makers(mixed):
    # the resting own order was placed with cancel_oldest; the incoming one's mode (cancel_newest) applies
    book = OrderBook()
    limit(book, 1, SELL, 100, 3, owner=9, stp="none")
    trades, updates = limit(book, 2, BUY, 100, 3, owner=9, stp="cancel_newest")
    assert trades == [] and updates == [U(2, 9, EXPIRED, 0, 0, 0, "self_trade")]
    assert 1 in book


# --------------------------------------------------------------------- FOK + STP


def test_fok_cancel_newest_blocked_by_own_order_has_no_side_effects(mixed):
    before = mixed.resting_orders()
    # 2 lots before the own order; 9 other lots exist at 100 but are behind it
    assert limit(mixed, 10, BUY, 101, 3, owner=9, tif="FOK") == ([], [U(10, 9, EXPIRED, 0, 0, 0, "fok_not_fillable")])
    assert limit(mixed, 11, BUY, 101, 3, owner=9, tif="FOK", stp="cancel_both")[1] == [
        U(11, 9, EXPIRED, 0, 0, 0, "fok_not_fillable")
    ]
    assert mixed.resting_orders() == before
    # what is in front of the own order can be filled
    assert limit(mixed, 12, BUY, 101, 2, owner=9, tif="FOK")[1][-1] == U(12, 9, FILLED, 2, 0, 200)


def test_fok_cancel_oldest_counts_only_other_owners_liquidity(mixed):
    before = mixed.resting_orders()
    # 2 + 4 + 5 = 11 lots of other owners at <= 101 (own 3 lots do not count)
    assert limit(mixed, 10, BUY, 101, 12, owner=9, tif="FOK", stp="cancel_oldest")[1] == [
        U(10, 9, EXPIRED, 0, 0, 0, "fok_not_fillable")
    ]
    assert limit(mixed, 11, BUY, 100, 7, owner=9, tif="FOK", stp="cancel_oldest")[1] == [
        U(11, 9, EXPIRED, 0, 0, 0, "fok_not_fillable")
    ]
    assert mixed.resting_orders() == before  # the own order was NOT canceled
    trades, updates = limit(mixed, 12, BUY, 101, 11, owner=9, tif="FOK", stp="cancel_oldest")
    assert sum(t.quantity for t in trades) == 11
    assert U(2, 9, CANCELED, 0, 0, 0, "self_trade") in updates
    assert updates[-1] == U(12, 9, FILLED, 11, 0, 2 * 100 + 4 * 100 + 5 * 101)


def test_fok_stp_none_counts_own_liquidity(mixed):
    trades, updates = limit(mixed, 10, BUY, 100, 9, owner=9, tif="FOK", stp="none")
    assert [t.maker_id for t in trades] == [1, 2, 3]
    assert updates[-1].status == FILLED


# ------------------------------------------------------------------- market orders


def test_market_buy_by_quantity_sweeps(asks):
    trades, updates = market(asks, 10, BUY, 7)
    assert [(t.price, t.quantity) for t in trades] == [(100, 3), (100, 2), (101, 2)]
    assert updates[-1] == U(10, 10, FILLED, 7, 0, 702)
    assert 10 not in asks


def test_market_buy_protection_price_stops_and_expires(asks):
    trades, updates = market(asks, 10, BUY, 20, price=101)
    assert [(t.price, t.quantity) for t in trades] == [(100, 3), (100, 2), (101, 5)]
    assert updates[-1] == U(10, 10, EXPIRED, 10, 0, 1005, "ioc_remainder")
    assert asks.best_ask() == 103  # never above the protection price


def test_market_without_liquidity():
    book = OrderBook()
    assert market(book, 1, BUY, 5) == ([], [U(1, 1, EXPIRED, 0, 0, 0, "no_liquidity")])
    limit(book, 2, SELL, 120, 5)
    assert market(book, 3, BUY, 5, price=110) == ([], [U(3, 3, EXPIRED, 0, 0, 0, "no_liquidity")])
    assert market(book, 4, BUY, quote_budget=10_000, price=110)[1] == [U(4, 4, EXPIRED, 0, 0, 0, "no_liquidity")]
    assert book.depth() == ([], [(120, 5)])


def test_market_buy_beyond_the_book_expires_the_rest(asks):
    trades, updates = market(asks, 10, BUY, 100)
    assert sum(t.quantity for t in trades) == 14
    assert updates[-1] == U(10, 10, EXPIRED, 14, 0, 1417, "ioc_remainder")
    assert asks.best_ask() is None


def test_market_sell_with_protection(asks):
    limit(asks, 6, BUY, 97, 3)
    limit(asks, 7, BUY, 90, 3)
    trades, updates = market(asks, 10, SELL, 12, price=93)
    assert [(t.maker_id, t.price, t.quantity) for t in trades] == [(5, 98, 7), (6, 97, 3)]
    assert updates[-1] == U(10, 10, EXPIRED, 10, 0, 7 * 98 + 3 * 97, "ioc_remainder")
    assert asks.best_bid() == 90
    trades, updates = market(asks, 11, SELL, 2)
    assert updates[-1] == U(11, 11, FILLED, 2, 0, 180)


def test_market_buy_by_quote_budget(asks):
    # 5 lots at 100 cost 500; 401 left buys 3 lots at 101 (303); 98 left < 101: done
    trades, updates = market(asks, 10, BUY, quote_budget=901)
    assert [(t.maker_id, t.price, t.quantity) for t in trades] == [(1, 100, 3), (2, 100, 2), (3, 101, 3)]
    assert updates == [
        U(1, 1, FILLED, 3, 0, 300),
        U(2, 2, FILLED, 2, 0, 200),
        U(3, 3, PARTIALLY_FILLED, 3, 2, 303),
        U(10, 10, FILLED, 8, 0, 803),
    ]
    assert asks.depth()[1] == [(101, 2), (103, 4)]


def test_market_buy_by_quote_budget_stops_at_next_level_it_cannot_afford():
    book = OrderBook()
    limit(book, 1, SELL, 100, 2)
    limit(book, 2, SELL, 150, 2)
    trades, updates = market(book, 3, BUY, quote_budget=349)  # 200 at 100, 149 < 150
    assert trades == [T(1, 3, 1, 3, BUY, 100, 2)]
    assert updates[-1] == U(3, 3, FILLED, 2, 0, 200)
    # a budget that cannot buy a single lot
    assert market(book, 4, BUY, quote_budget=149) == ([], [U(4, 4, EXPIRED, 0, 0, 0, "no_liquidity")])


def test_market_buy_by_quote_budget_with_protection(asks):
    trades, updates = market(asks, 10, BUY, quote_budget=10_000, price=100)
    assert [(t.price, t.quantity) for t in trades] == [(100, 3), (100, 2)]
    assert updates[-1] == U(10, 10, EXPIRED, 5, 0, 500, "ioc_remainder")
    assert asks.best_ask() == 101


def test_market_buy_by_quantity_and_budget_whichever_first(asks):
    assert market(asks, 10, BUY, 4, quote_budget=10_000)[1][-1] == U(10, 10, FILLED, 4, 0, 400)
    # 1 lot left at 100, then 101: 100 + 101 = 201, 49 left cannot buy more
    assert market(asks, 11, BUY, 4, quote_budget=250)[1][-1] == U(11, 11, EXPIRED, 2, 0, 201, "ioc_remainder")


def test_market_fok(asks):
    before = asks.resting_orders()
    assert market(asks, 10, BUY, 15, tif="FOK")[1] == [U(10, 10, EXPIRED, 0, 0, 0, "fok_not_fillable")]
    assert market(asks, 11, BUY, 11, tif="FOK", price=101)[1] == [U(11, 11, EXPIRED, 0, 0, 0, "fok_not_fillable")]
    assert market(asks, 12, BUY, 6, quote_budget=600, tif="FOK")[1] == [U(12, 12, EXPIRED, 0, 0, 0, "fok_not_fillable")]
    assert asks.resting_orders() == before
    assert market(asks, 13, BUY, 14, tif="FOK")[1][-1] == U(13, 13, FILLED, 14, 0, 1417)


def test_market_fok_by_quote_budget():
    book = OrderBook()
    limit(book, 1, SELL, 100, 2)
    # the book cannot absorb 1000: the order would run out of liquidity
    assert market(book, 2, BUY, quote_budget=1000, tif="FOK") == ([], [U(2, 2, EXPIRED, 0, 0, 0, "fok_not_fillable")])
    limit(book, 3, SELL, 101, 10)
    # 200 + 7 * 101 = 907; 93 left cannot buy another lot: filled
    trades, updates = market(book, 4, BUY, quote_budget=1000, tif="FOK")
    assert [(t.price, t.quantity) for t in trades] == [(100, 2), (101, 7)]
    assert updates[-1] == U(4, 4, FILLED, 9, 0, 907)


def test_market_gtc_tif_is_treated_as_ioc(asks):
    market(asks, 10, BUY, 20, tif="GTC")
    assert 10 not in asks
    assert asks.best_bid() == 98


# -------------------------------------------------------------------------- cancel


def test_cancel_resting_order():
    book = OrderBook()
    limit(book, 1, SELL, 100, 5)
    limit(book, 2, BUY, 100, 2)
    assert book.cancel(order_id=1) == ([], [U(1, 1, CANCELED, 2, 0, 200, "canceled_by_user")])
    assert 1 not in book
    assert book.depth() == ([], [])


def test_cancel_unknown_or_done_order():
    book = OrderBook()
    unknown = ([], [U(42, -1, REJECTED, 0, 0, 0, "unknown_order")])
    assert book.cancel(order_id=42) == unknown
    limit(book, 42, BUY, 100, 1)
    book.cancel(order_id=42)
    assert book.cancel(order_id=42) == unknown
    limit(book, 43, SELL, 100, 1)
    limit(book, 44, BUY, 100, 1)  # fills 43
    assert book.cancel(order_id=43)[1][0].reason == "unknown_order"


def test_cancel_in_the_middle_of_a_level_keeps_priority_and_totals():
    book = OrderBook()
    for oid in range(1, 6):
        limit(book, oid, SELL, 100, oid)
    book.cancel(order_id=3)  # middle: lazily dead
    book.cancel(order_id=1)  # head
    book.cancel(order_id=5)  # tail
    assert book.depth() == ([], [(100, 6)])
    assert book.resting_orders() == [(2, 2, SELL, 100, 2), (4, 4, SELL, 100, 4)]
    trades, _ = limit(book, 10, BUY, 100, 3)
    assert [(t.maker_id, t.quantity) for t in trades] == [(2, 2), (4, 1)]
    assert book.depth() == ([], [(100, 3)])
    book.cancel(order_id=4)
    assert book.depth() == ([], []) and len(book) == 0
    assert book.best_ask() is None


def test_many_cancels_in_a_level_compact_it_and_matching_skips_the_dead():
    book = OrderBook()
    for oid in range(1, 201):
        limit(book, oid, BUY, 100, 1)
    for oid in range(2, 200, 2):  # every even id but the tail: lazily deleted, then compacted
        book.cancel(order_id=oid)
    assert book.depth() == ([(100, 101)], [])
    expected = [(oid, oid, BUY, 100, 1) for oid in range(1, 201) if oid % 2 or oid == 200]
    assert book.resting_orders() == expected
    trades, updates = limit(book, 1000, SELL, 100, 60, owner=0)
    assert [t.maker_id for t in trades] == [oid for oid, *_ in expected][:60]
    assert updates[-1] == U(1000, 0, FILLED, 60, 0, 6000)
    assert book.depth() == ([(100, 41)], [])


def test_fok_ignores_lazily_canceled_orders():
    book = OrderBook()
    limit(book, 1, SELL, 100, 3, owner=1)
    limit(book, 2, SELL, 100, 3, owner=2)
    limit(book, 3, SELL, 100, 3, owner=1)
    book.cancel(order_id=2)  # dead in the middle
    assert limit(book, 4, BUY, 100, 4, owner=5, tif="FOK", stp="cancel_oldest")[1][-1].status == FILLED
    assert limit(book, 5, BUY, 100, 3, owner=1, tif="FOK")[1] == [U(5, 1, EXPIRED, 0, 0, 0, "fok_not_fillable")]


# ---------------------------------------------------------------- restore / misc


def _scenario_commands():
    return [
        ("place", {"order_id": 1, "owner": 1, "side": SELL, "price": 101, "quantity": 5}),
        ("place", {"order_id": 2, "owner": 2, "side": SELL, "price": 101, "quantity": 3}),
        ("place", {"order_id": 3, "owner": 3, "side": BUY, "price": 99, "quantity": 4}),
        ("place", {"order_id": 4, "owner": 4, "side": BUY, "price": 101, "quantity": 2}),  # partially fills 1
        ("place", {"order_id": 5, "owner": 5, "side": SELL, "price": 102, "quantity": 6}),
        ("place", {"order_id": 6, "owner": 1, "side": BUY, "price": 99, "quantity": 1}),
        ("cancel", {"order_id": 3}),
        ("place", {"order_id": 7, "owner": 6, "side": BUY, "price": 98, "quantity": 2, "post_only": True}),
        # --- restart here ---
        ("place", {"order_id": 8, "owner": 7, "side": BUY, "price": 102, "quantity": 10}),
        ("place", {"order_id": 9, "owner": 1, "side": SELL, "price": 99, "quantity": 5, "tif": "IOC"}),
        (
            "place",
            {
                "order_id": 10,
                "owner": 8,
                "side": BUY,
                "price": None,
                "quantity": None,
                "quote_budget": 500,
                "market": True,
            },
        ),
        ("cancel", {"order_id": 8}),
        ("place", {"order_id": 11, "owner": 2, "side": SELL, "price": 97, "quantity": 9, "tif": "FOK"}),
        (
            "place",
            {
                "order_id": 12,
                "owner": 2,
                "side": SELL,
                "price": 98,
                "quantity": 2,
                "tif": "FOK",
                "stp": "cancel_oldest",
            },
        ),
    ]


def _run(book, commands):
    return [getattr(book, name)(**kw) for name, kw in commands]


def test_restore_then_matching_behaves_as_if_never_restarted():
    cmds = _scenario_commands()
    live = OrderBook()
    _run(live, cmds[:8])
    restored = OrderBook()
    for oid, owner, side, price, remaining in live.resting_orders():
        state = live.get(oid)
        restored.restore(
            order_id=oid,
            owner=owner,
            side=side,
            price=price,
            remaining=remaining,
            filled=state["filled"],
            spent=state["spent"],
            stp=state["stp"],
        )
    assert restored.resting_orders() == live.resting_orders()
    assert restored.depth() == live.depth()
    # order 1 was partially filled (2 of 5) before the restart: cumulative fields survive
    assert restored.get(1)["filled"] == 2 and restored.get(1)["spent"] == 202
    after_live = _run(live, cmds[8:])
    after_restored = _run(restored, cmds[8:])
    assert after_live == after_restored
    assert any(trades for trades, _ in after_live)
    assert live.resting_orders() == restored.resting_orders()


def test_restore_appends_at_the_end_of_its_level_without_matching():
    book = OrderBook()
    book.restore(order_id=5, owner=1, side=SELL, price=100, remaining=2, filled=1, spent=100)
    book.restore(order_id=3, owner=2, side=SELL, price=100, remaining=4)
    book.restore(order_id=9, owner=2, side=BUY, price=99, remaining=1)
    assert book.resting_orders() == [(9, 2, BUY, 99, 1), (5, 1, SELL, 100, 2), (3, 2, SELL, 100, 4)]
    with pytest.raises(ValueError):
        book.restore(order_id=5, owner=1, side=SELL, price=100, remaining=2)
    with pytest.raises(ValueError):  # would cross
        book.restore(order_id=6, owner=1, side=BUY, price=100, remaining=2)
    assert limit(book, 10, BUY, 100, 3)[1] == [
        U(5, 1, FILLED, 3, 0, 300),
        U(3, 2, PARTIALLY_FILLED, 1, 3, 100),
        U(10, 10, FILLED, 3, 0, 300),
    ]


def test_deterministic_same_commands_same_events():
    assert _run(OrderBook(), _scenario_commands()) == _run(OrderBook(), _scenario_commands())


def test_duplicate_resting_order_id_raises():
    book = OrderBook()
    limit(book, 1, BUY, 100, 1)
    with pytest.raises(ValueError):
        limit(book, 1, BUY, 99, 1)
    with pytest.raises(ValueError):
        market(book, 1, SELL, 1)
    assert book.resting_orders() == [(1, 1, BUY, 100, 1)]
    # an id that is no longer resting may be reused (the caller guarantees uniqueness)
    book.cancel(order_id=1)
    assert limit(book, 1, BUY, 100, 1)[1][0].status == OPEN


@pytest.mark.parametrize(
    "kwargs",
    [
        {"side": "hold", "price": 100, "quantity": 1},
        {"side": BUY, "price": None, "quantity": 1},
        {"side": BUY, "price": 100, "quantity": None},
        {"side": BUY, "price": 100, "quantity": 0},
        {"side": BUY, "price": 0, "quantity": 1},
        {"side": BUY, "price": 100.5, "quantity": 1},
        {"side": BUY, "price": 100, "quantity": 1, "tif": "GTD"},
        {"side": BUY, "price": 100, "quantity": 1, "stp": "cancel_everything"},
        {"side": BUY, "price": 100, "quantity": 1, "quote_budget": 100},
        {"side": BUY, "price": None, "quantity": 1, "market": True, "post_only": True},
        {"side": BUY, "price": None, "quantity": None, "market": True},
        {"side": SELL, "price": None, "quantity": None, "quote_budget": 100, "market": True},
        {"side": BUY, "price": None, "quantity": -1, "market": True},
    ],
)
def test_invalid_commands_raise_value_error(kwargs):
    book = OrderBook()
    limit(book, 1, SELL, 100, 1)
    with pytest.raises(ValueError):
        book.place(order_id=2, owner=2, **kwargs)
    assert book.resting_orders() == [(1, 1, SELL, 100, 1)]


def test_level_quantity_reports_live_lots_at_a_price():
    book = OrderBook("X")
    book.place(order_id=1, owner=1, side=BUY, price=100, quantity=3)
    book.place(order_id=2, owner=2, side=BUY, price=100, quantity=4)
    book.place(order_id=3, owner=3, side=SELL, price=105, quantity=2)
    book.cancel(order_id=1)
    assert book.level_quantity(side=BUY, price=100) == 4
    assert book.level_quantity(side=SELL, price=105) == 2
    assert book.level_quantity(side=SELL, price=100) == 0


BAD_COMMANDS = [
    {"price": None, "quantity": 1},
    {"price": 100, "quantity": 0},
    {"price": 100, "quantity": 1, "tif": "GTD"},
    {"price": 100, "quantity": 1, "stp": "bogus"},
    {"price": 100, "quantity": 1, "side": "both"},
    {"price": 100, "quantity": 1, "quote_budget": 5},
    {"price": 100, "quantity": 1, "tif": "XYZ", "post_only": True},
    {"price": None, "quantity": None, "quote_budget": 0, "market": True},
    {"price": None, "quantity": None, "quote_budget": None, "market": True},
    {"price": 0, "quantity": 1, "market": True},
    {"price": None, "quantity": 1, "market": True, "post_only": True},
    {"price": None, "quantity": 1, "market": True, "tif": "XYZ"},
    {"price": None, "quantity": None, "quote_budget": 500, "market": True, "side": SELL},
    {"order_id": 1, "price": 99, "quantity": 1},  # duplicate id
]


@pytest.mark.parametrize("command", BAD_COMMANDS, ids=[str(c) for c in BAD_COMMANDS])
def test_a_command_the_engine_refuses_changes_nothing(command):
    """The shard rejects such an order alone and goes on with the same book: it must be untouched."""
    book = OrderBook("X")
    book.place(order_id=1, owner=1, side=SELL, price=100, quantity=3)
    book.place(order_id=2, owner=2, side=BUY, price=99, quantity=2)
    before = (book.resting_orders(), book.depth(), [book.get(i) for i in (1, 2)])
    args = {"order_id": 9, "owner": 3, "side": BUY, **command}
    with pytest.raises(ValueError):
        book.place(**args)
    assert (book.resting_orders(), book.depth(), [book.get(i) for i in (1, 2)]) == before
    assert 9 not in book
