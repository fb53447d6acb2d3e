"""run_bots against a real daphne and shard worker: the market trades, and the bots clean up after themselves."""

import pytest
from django.core.management import call_command

from accounts.models import ApiToken
from accounts.tests.factories import UserFactory
from ledger.services import asset_get_or_create, funds_deposit
from orders.models import Order, Trade
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_bots_quote_and_trade_for_a_bounded_time_then_cancel_and_revoke(live_server_url, shard_worker):
    market = MarketFactory()
    for name in ("maker-bot", "taker-bot"):
        bot = UserFactory(username=name)
        funds_deposit(user=bot, asset=asset_get_or_create(code="USD"), amount="1000000")
        funds_deposit(user=bot, asset=asset_get_or_create(code="BTC"), amount="50")

    call_command(
        "run_bots",
        base_url=live_server_url,
        duration=5,
        interval=0.4,
        levels=3,
        take_probability=1.0,
        seed=3,
        markets=["BTC-USD"],
    )
    shard_worker.wait_idle()

    maker_orders = Order.objects.filter(user__username="maker-bot", market=market)
    assert maker_orders.count() >= 6
    assert Trade.objects.filter(market=market, maker_user__username="maker-bot").exists()
    assert not maker_orders.filter(status__in=Order.LIVE_STATUSES).exists()
    assert not ApiToken.objects.filter(user__username__in=["maker-bot", "taker-bot"], revoked_at=None).exists()
