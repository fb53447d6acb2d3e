"""The order history expands an order into its lifecycle events, in a real headless Chromium."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from ledger.services import asset_get_or_create, funds_deposit
from orders.services import order_cancel, order_place
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_closed_order_expands_to_its_events(live_server_url, shard_worker, browser_page, django_user_model):
    page = browser_page
    MarketFactory(symbol="BTC-USD", tick_size=Decimal("0.01"), lot_size=Decimal("0.001"))
    page.goto(live_server_url + "/accounts/signup/")
    page.fill("input[name=username]", "journal-reader")
    page.fill("input[name=password1]", "a-Strong-pass-91")
    page.fill("input[name=password2]", "a-Strong-pass-91")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("logout")).to_be_visible()
    me = django_user_model.objects.get(username="journal-reader")
    funds_deposit(user=me, asset=asset_get_or_create(code="USD"), amount="1000")
    order, _ = order_place(user=me, symbol="BTC-USD", side="buy", price="100", quantity="1")
    shard_worker.wait_idle()
    order_cancel(user=me, order_id=order.pk)
    shard_worker.wait_idle()

    page.goto(live_server_url + "/markets/BTC-USD/")
    page.get_by_test_id("tab-history").click()
    expect(page.get_by_test_id(f"history-{order.pk}")).to_have_attribute("data-status", "canceled")
    page.get_by_test_id(f"history-{order.pk}-toggle").click()
    events = page.get_by_test_id(f"history-{order.pk}-events").locator("tbody tr")
    expect(events).to_have_count(4)
    assert [events.nth(n).get_attribute("data-type") for n in range(4)] == [
        "accepted",
        "opened",
        "cancel_requested",
        "canceled",
    ]
    expect(page.get_by_test_id(f"event-{order.pk}-4")).to_contain_text("canceled_by_user")
    page.get_by_test_id(f"history-{order.pk}-toggle").click()
    expect(page.get_by_test_id(f"history-{order.pk}-events")).to_have_count(0)
