"""ledger_check on a live exchange: exact while a real shard process settles trades."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from orders.models import Order, Trade
from orders.selectors import exchange_problems
from orders.services import order_place
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_ledger_check_is_clean_every_time_while_a_shard_settles(shard_worker, funded):
    MarketFactory()
    traders = [funded(USD="1000000", BTC="1000") for _ in range(6)]
    stop = threading.Event()
    runs: list[list[str]] = []

    def check_again_and_again():
        try:
            while not stop.is_set():
                runs.append(exchange_problems())
        finally:
            connection.close()

    checker = threading.Thread(target=check_again_and_again)
    checker.start()
    try:
        # A stream of crossing orders: each buy meets the sells before it at a price of its own,
        # so every batch moves money between several users, settles fills and releases holds.
        for n in range(300):
            trader = traders[n % len(traders)]
            side = "buy" if n % 2 else "sell"
            price = Decimal(100 + (n % 7)) if side == "buy" else Decimal(100 + (n % 5))
            order_place(user=trader, symbol="BTC-USD", side=side, price=price, quantity=Decimal("0.5"))
        shard_worker.wait_idle(timeout=120)
    finally:
        stop.set()
        checker.join(timeout=60)

    assert Trade.objects.count() > 50
    assert not Order.objects.filter(status=Order.Status.PENDING).exists()
    dirty = [problems for problems in runs if problems]
    assert len(runs) >= 10, "the check should have run many times while the shard settled"
    assert dirty == [], f"{len(dirty)} of {len(runs)} checks saw a broken ledger: {dirty[0][:5]}"
