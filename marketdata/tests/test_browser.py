"""The trading page in a real headless Chromium, with a real daphne and a real shard worker."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from rest_framework.test import APIClient

from accounts.services import token_create
from exchange_site.testing import BASE_DIR
from ledger.services import asset_get_or_create, funds_deposit
from orders.models import Order
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = BASE_DIR / "artifacts" / "screenshots"


def test_sign_up_trade_live_cancel_and_inline_errors(
    live_server_url, shard_worker, browser_page, funded, django_user_model
):
    page = browser_page
    MarketFactory(symbol="BTC-USD", tick_size=Decimal("0.01"), lot_size=Decimal("0.001"))

    # Sign up.
    page.goto(live_server_url + "/accounts/signup/")
    page.fill("input[name=username]", "browser-trader")
    page.fill("input[name=password1]", "a-Strong-pass-91")
    page.fill("input[name=password2]", "a-Strong-pass-91")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("logout")).to_be_visible()
    me = django_user_model.objects.get(username="browser-trader")
    funds_deposit(user=me, asset=asset_get_or_create(code="USD"), amount="1000")

    # See balances.
    page.goto(live_server_url + "/markets/BTC-USD/")
    expect(page.get_by_test_id("balance-USD-available")).to_have_text(re.compile(r"^1,?000(\.0+)?$"))

    # An off-tick price gets an inline error and places nothing.
    page.get_by_test_id("side-buy").click()
    page.get_by_test_id("order-price").fill("100.005")
    page.get_by_test_id("order-quantity").fill("1")
    page.get_by_test_id("submit-order").click()
    expect(page.get_by_test_id("error-price")).to_contain_text("0.01")
    assert not Order.objects.filter(user=me).exists()

    # Place a limit buy and see it among the open orders.
    page.get_by_test_id("order-price").fill("100")
    page.get_by_test_id("order-quantity").fill("2")
    page.get_by_test_id("submit-order").click()
    expect(page.locator("[data-testid^=order-][data-status=open]")).to_have_count(1)
    order = Order.objects.get(user=me)
    expect(page.get_by_test_id(f"order-{order.id}")).to_be_visible()
    expect(page.get_by_test_id("balance-USD-locked")).to_have_text(re.compile(r"^200(\.0+)?$"))

    # Another trader sells into it through the API: the fill and the balances change live.
    seller = funded(BTC="5")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=seller)[1]}")
    response = client.post(
        "/api/v1/orders", {"symbol": "BTC-USD", "side": "sell", "price": "100", "quantity": "0.5"}, format="json"
    )
    assert response.status_code == 201
    page.get_by_test_id("tab-fills").click()
    expect(page.locator("[data-testid^=fill-]")).to_have_count(1)
    # 0.5 BTC less the 0.1% maker fee.
    expect(page.get_by_test_id("balance-BTC-available")).to_have_text(re.compile(r"^0\.4995$"))
    expect(page.get_by_test_id("balance-USD-locked")).to_have_text(re.compile(r"^150(\.0+)?$"))

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "trading-laptop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "trading-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 768})

    # Cancel what is left: it leaves the open orders and the funds come back.
    page.get_by_test_id("tab-open").click()
    page.get_by_test_id(f"cancel-{order.id}").click()
    expect(page.get_by_test_id(f"order-{order.id}")).to_have_count(0)
    expect(page.get_by_test_id("balance-USD-locked")).to_have_text(re.compile(r"^0(\.0+)?$"))
    order.refresh_from_db()
    assert order.status == "canceled"
