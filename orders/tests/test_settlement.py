"""The shard worker's batch settlement, driven in-process: exact balances, fees, releases, states.

The worker runs as in production (ShardWorker(pipelined=True), as matching/celery_step.py starts
it): batches are matched on the test's thread, committed by the committer thread and published by
the publisher thread, with every trader counted as streaming so their order, fill and balance
events are rendered and sent too. ``drain`` waits on the committer's and publisher's queues (the
events themselves), never on a pause.
"""

import logging
import sys
from decimal import Decimal

import pytest

from ledger.selectors import balances_for_user
from marketdata import presence
from matching.worker import GIL_SWITCH_SECONDS, ShardWorker
from orders.models import Order, Trade
from orders.selectors import fills_for_user
from orders.services import order_cancel, order_place

from .factories import MarketFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def market(db):
    return MarketFactory(
        tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), maker_fee=Decimal("0.001"), taker_fee=Decimal("0.002")
    )


@pytest.fixture
def worker(market, caplog):
    """Shard 0 with its committer and publisher threads, as ShardWorker.run starts them."""
    switch_interval = sys.getswitchinterval()
    shard = ShardWorker(0, pipelined=True)
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    shard.committer.start()
    shard.publisher.start()
    shard.start()
    yield shard
    shard.committer.close()
    shard.publisher.close()
    shard.release_lock()
    sys.setswitchinterval(switch_interval)
    # The committer and publisher threads log and carry on after a failure: a failure is a failed test.
    failures = [r.getMessage() for r in caplog.records if r.name == "matching.shard" and r.levelno >= logging.ERROR]
    assert failures == []


def drain(worker):
    """Every queued command matched, committed and published."""
    while worker.step(timeout=0):
        pass
    worker.committer.queue.join()
    assert not worker.committer.failed.is_set(), "a batch failed to commit"
    worker.publisher.queue.join()


def bal(user):
    return {row["asset"]: (row["available"], row["locked"]) for row in balances_for_user(user=user)}


def place(user, **kwargs):
    # Counted as streaming, so the worker renders and publishes this trader's private events too.
    presence.stream_opened(user_id=user.pk)
    order, _ = order_place(user=user, symbol="BTC-USD", **kwargs)
    return order


def test_crossing_orders_trade_at_the_makers_price_with_fees(worker, funded):
    seller = funded(BTC="1")
    buyer = funded(USD="1000")
    ask = place(seller, side="sell", price="100", quantity="0.5")
    drain(worker)
    bid = place(buyer, side="buy", price="101", quantity="0.3")
    drain(worker)

    trade = Trade.objects.get()
    assert (trade.price, trade.quantity, trade.taker_side) == (Decimal("100"), Decimal("0.3"), "buy")
    ask.refresh_from_db()
    bid.refresh_from_db()
    assert (ask.status, ask.filled_quantity, ask.hold_remaining) == ("partially_filled", Decimal("0.3"), Decimal("0.2"))
    assert (bid.status, bid.filled_quantity, bid.hold_remaining) == ("filled", Decimal("0.3"), Decimal(0))
    # Buyer paid 30 USD (price improvement of 0.3 released), received 0.3 BTC less the 0.2% taker fee.
    assert bal(buyer) == {"USD": (Decimal("970"), Decimal(0)), "BTC": (Decimal("0.2994"), Decimal(0))}
    # Seller received 30 USD less the 0.1% maker fee; 0.2 BTC still locked for the rest of the ask.
    assert bal(seller) == {"USD": (Decimal("29.97"), Decimal(0)), "BTC": (Decimal("0.5"), Decimal("0.2"))}
    fills = fills_for_user(user=buyer)[0]
    assert fills == [
        {
            "id": trade.pk * 2 + 1,
            "trade_id": trade.pk,
            "order_id": bid.pk,
            "symbol": "BTC-USD",
            "side": "buy",
            "price": "100",
            "quantity": "0.3",
            "fee": "0.0006",
            "fee_asset": "BTC",
            "liquidity": "taker",
            "created_at": fills[0]["created_at"],
        }
    ]


def test_price_time_priority_and_partial_fills_across_levels(worker, funded):
    first, second, third, taker = funded(BTC="1"), funded(BTC="1"), funded(BTC="1"), funded(USD="1000")
    a = place(first, side="sell", price="101", quantity="0.1")
    b = place(second, side="sell", price="100", quantity="0.1")
    c = place(third, side="sell", price="100", quantity="0.1")
    drain(worker)
    place(taker, side="buy", price="101", quantity="0.25")
    drain(worker)
    makers = list(Trade.objects.order_by("sequence").values_list("maker_order_id", "price", "quantity"))
    assert makers == [
        (b.pk, Decimal(100), Decimal("0.1")),
        (c.pk, Decimal(100), Decimal("0.1")),
        (a.pk, Decimal(101), Decimal("0.05")),
    ]


def test_cancel_releases_the_remainder(worker, funded):
    trader = funded(USD="100")
    order = place(trader, side="buy", price="10", quantity="2")
    drain(worker)
    assert bal(trader)["USD"] == (Decimal(80), Decimal(20))
    order_cancel(user=trader, order_id=order.pk)
    drain(worker)
    order.refresh_from_db()
    assert order.status == "canceled" and order.hold_remaining == 0
    assert bal(trader)["USD"] == (Decimal(100), Decimal(0))


def test_market_buy_by_quote_spends_at_most_the_budget(worker, funded):
    seller, buyer = funded(BTC="1"), funded(USD="1000")
    place(seller, side="sell", price="100", quantity="0.1")
    place(seller, side="sell", price="104", quantity="0.5")
    drain(worker)
    order = place(buyer, side="buy", type="market", quote_quantity="25")
    drain(worker)
    order.refresh_from_db()
    # 0.1 at 100 = 10 USD, then 15 USD buys 0.144 (whole lots) at 104 = 14.976; the 0.024 left is released.
    assert (order.status, order.filled_quantity, order.filled_quote) == ("filled", Decimal("0.244"), Decimal("24.976"))
    assert bal(buyer)["USD"] == (Decimal("975.024"), Decimal(0))


def test_market_buy_by_quote_stops_at_the_protection_price(worker, funded):
    seller, buyer = funded(BTC="1"), funded(USD="1000")
    place(seller, side="sell", price="100", quantity="0.1")
    place(seller, side="sell", price="200", quantity="0.1")  # beyond best ask + 5%
    drain(worker)
    order = place(buyer, side="buy", type="market", quote_quantity="25")
    drain(worker)
    order.refresh_from_db()
    assert (order.status, order.filled_quantity, order.filled_quote) == ("expired", Decimal("0.1"), Decimal("10"))
    assert bal(buyer)["USD"] == (Decimal("990"), Decimal(0))


def test_market_buy_by_quantity_never_pays_above_the_protection_price(worker, funded):
    seller, buyer = funded(BTC="1"), funded(USD="1000")
    place(seller, side="sell", price="100", quantity="0.1")
    place(seller, side="sell", price="106", quantity="0.1")  # beyond best ask + 5%
    drain(worker)
    order = place(buyer, side="buy", type="market", quantity="0.2")
    assert order.protection_price == Decimal("105")
    drain(worker)
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("expired", Decimal("0.1"))
    assert bal(buyer)["USD"] == (Decimal("990"), Decimal(0))


def test_post_only_that_would_cross_is_rejected_and_released(worker, funded):
    seller, buyer = funded(BTC="1"), funded(USD="1000")
    place(seller, side="sell", price="100", quantity="0.1")
    drain(worker)
    order = place(buyer, side="buy", price="100", quantity="0.1", post_only=True)
    drain(worker)
    order.refresh_from_db()
    assert (order.status, order.reject_reason) == ("rejected", "post_only_would_cross")
    assert bal(buyer)["USD"] == (Decimal("1000"), Decimal(0))


def test_self_trade_prevention_cancel_oldest(worker, funded):
    trader = funded(USD="1000", BTC="1")
    resting = place(trader, side="sell", price="100", quantity="0.1")
    drain(worker)
    incoming = place(trader, side="buy", price="100", quantity="0.1", stp="cancel_oldest")
    drain(worker)
    resting.refresh_from_db()
    incoming.refresh_from_db()
    assert resting.status == "canceled" and incoming.status == "open"
    assert Trade.objects.count() == 0


def test_a_cancel_that_overtakes_the_engine_cancels_the_pending_order(worker, funded):
    trader = funded(USD="100")
    order = place(trader, side="buy", price="10", quantity="1")
    order_cancel(user=trader, order_id=order.pk)
    drain(worker)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELED
    assert bal(trader)["USD"] == (Decimal(100), Decimal(0))


def test_a_batch_nets_its_money_through_clearing_a_few_transfers_per_user(worker, funded):
    from django.db.models import Sum

    from ledger.models import LedgerAccount, Transfer

    sellers = [funded(BTC="1") for _ in range(4)]
    buyers = [funded(USD="1000") for _ in range(4)]
    for n in range(16):
        place(sellers[n % 4], side="sell", price=str(100 + n // 4), quantity="0.01")
    drain(worker)
    for buyer in buyers:
        place(buyer, side="buy", price="103", quantity="0.04")
    before = Transfer.objects.count()  # the buyers' holds included
    drain(worker)

    trades = list(Trade.objects.all())
    # Every buyer met every seller: 16 trades, 16 buyer-seller pairs, four legs each if written one
    # by one. Through clearing, one batch: each buyer's quote in and base out, each seller's base in
    # and quote out, one fee transfer per asset, and a release for each of the three buyers who paid
    # less than their bid of 103 (the first three price levels).
    assert (len(trades), len({(t.maker_user_id, t.taker_user_id) for t in trades})) == (16, 16)
    assert Transfer.objects.count() - before == 4 * 4 + 2 + 3
    assert not LedgerAccount.objects.filter(kind=LedgerAccount.Kind.CLEARING).exclude(balance=0).exists()
    for seller in sellers:
        sold = [t for t in trades if t.maker_user_id == seller.pk]
        proceeds = sum(t.price * t.quantity - t.maker_fee for t in sold)
        assert bal(seller) == {"USD": (proceeds, Decimal(0)), "BTC": (Decimal("0.96"), Decimal(0))}
    for buyer in buyers:
        bought = [t for t in trades if t.taker_user_id == buyer.pk]
        spent = sum(t.price * t.quantity for t in bought)
        received = Decimal("0.04") - sum(t.taker_fee for t in bought)
        assert bal(buyer) == {"USD": (Decimal(1000) - spent, Decimal(0)), "BTC": (received, Decimal(0))}
    fees = dict(
        LedgerAccount.objects.filter(kind=LedgerAccount.Kind.FEES, balance__gt=0)
        .values_list("asset__code")
        .annotate(total=Sum("balance"))
    )
    assert fees == {"USD": sum(t.maker_fee for t in trades), "BTC": sum(t.taker_fee for t in trades)}
