"""Live market data in a real headless Chromium, fed by batch_publish directly (no shard worker needed)."""

import re
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.tests.factories import UserFactory
from ledger.services import asset_get_or_create, funds_deposit
from marketdata.publish import batch_publish, depth_reset
from orders.models import Order, Trade
from orders.serializers import trade_public_data
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def trade(market, sequence, price, quantity):
    maker, taker = UserFactory(), UserFactory()
    order = Order.objects.create(
        user=maker, market=market, side="buy", type="limit", price=1, quantity=1, status="filled"
    )
    return Trade.objects.create(
        market=market,
        sequence=sequence,
        maker_order=order,
        taker_order=order,
        maker_user=maker,
        taker_user=taker,
        taker_side="buy",
        price=Decimal(price),
        quantity=Decimal(quantity),
        created_at=timezone.now(),
    )


def publish(**batch):
    batch_publish(**{"depth_changes": {}, "trades": {}, "orders": {}, "fills": {}, "balance_users": set(), **batch})


def test_home_tickers_book_tape_and_estimates_update_live(live_server_url, browser_page):
    page = browser_page
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    market = MarketFactory()
    first = trade(market, 1, "100", "1")

    page.goto(live_server_url + "/")
    row = page.get_by_test_id("market-BTC-USD")
    expect(row.locator("[data-field=last]")).to_have_text("100")
    # The list subscribes to tickers; a trade moves them without a reload.
    page.wait_for_function("document.querySelector('[data-testid=market-BTC-USD]') !== null")
    page.wait_for_timeout(300)
    second = trade(market, 2, "110", "0.5")
    publish(trades={"BTC-USD": [trade_public_data(second)]})
    expect(row.locator("[data-field=last]")).to_have_text("110")
    expect(row.locator("[data-field=change_pct_24h]")).to_have_text("10.00%")

    # Signed out: the market data is live, trading asks to log in.
    page.goto(live_server_url + "/markets/BTC-USD/")
    expect(page.get_by_test_id("signin-prompt")).to_be_visible()
    expect(page.get_by_test_id("ws-status")).to_have_attribute("data-state", "open")
    depth_reset(symbol="BTC-USD", bids=[("99", "1")], asks=[("111", "0.5"), ("112", "2")])
    expect(page.locator("[data-testid=book-level][data-side=ask]")).to_have_count(2)

    trader = UserFactory()
    funds_deposit(user=trader, asset=asset_get_or_create(code="USD"), amount="500")
    page.goto(live_server_url + "/accounts/login/?next=/markets/BTC-USD/")
    page.fill("input[name=username]", trader.username)
    page.fill("input[name=password]", "correct-horse-42")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("ws-status")).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("ticker-last")).to_have_text("110.00")
    expect(page.get_by_test_id(f"trade-{first.id}")).to_be_visible()
    expect(page.get_by_test_id("balance-USD-available")).to_have_text("500")
    expect(page.locator("[data-testid=book-level][data-side=ask]")).to_have_count(2)  # from the snapshot
    publish(depth_changes={"BTC-USD": {"bids": [("99", "0"), ("98.5", "3")], "asks": []}})
    expect(page.locator("[data-testid=book-level][data-side=bid]")).to_have_attribute("data-price", "98.5")
    expect(page.get_by_test_id("book-spread")).to_have_text("Spread 12.50")

    # A market buy of 1 BTC walks the asks: 0.5 x 111 + 0.5 x 112 = 111.5 USD, taker fee 0.2% in BTC.
    page.get_by_test_id("order-type").select_option("market")
    page.get_by_test_id("order-quantity").fill("1")
    expect(page.get_by_test_id("estimate-cost")).to_have_text(re.compile(r"^111\.5 USD"))
    expect(page.get_by_test_id("estimate-fee")).to_contain_text("0.002 BTC")
    # A limit sell that is post-only pays the maker fee in USD.
    page.get_by_test_id("side-sell").click()
    page.get_by_test_id("order-type").select_option("limit")
    page.get_by_test_id("order-price").fill("120")
    page.get_by_test_id("order-post-only").check()
    expect(page.get_by_test_id("estimate-cost")).to_have_text(re.compile(r"^you receive 120 USD"))
    expect(page.get_by_test_id("estimate-fee")).to_contain_text("0.12 USD (maker 0.1%)")

    # The chart drew the candles of the REST history and follows the stream.
    expect(page.get_by_test_id("chart")).to_have_attribute("data-candles", "1")
    third = trade(market, 3, "115", "0.25")
    publish(trades={"BTC-USD": [trade_public_data(third)]})
    expect(page.get_by_test_id(f"trade-{third.id}")).to_be_visible()
    expect(page.get_by_test_id("chart")).to_have_attribute("data-last-candle", re.compile(r'"close": ?"115"'))
    assert errors == []
