"""Funding end to end in a real headless Chromium: deposit, trade, withdraw, operator approval with 2FA, statement."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from exchange_site.testing import BASE_DIR
from funding.models import FundingRequest
from funding.tests.factories import TOTPDeviceFactory, operator_create
from ledger.services import asset_get_or_create
from orders.models import Order
from orders.services import order_place
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = BASE_DIR / "artifacts" / "screenshots"


def number(text: str) -> re.Pattern:
    """The decimal ``text``, with or without thousands separators and trailing zeros."""
    whole, _, frac = text.partition(".")
    grouped = re.sub(r"\B(?=(\d{3})+$)", ",?", whole)
    fraction = re.escape("." + frac) if frac else ""
    return re.compile(rf"^{grouped}{fraction}(\.?0*)?$")


def totp_now(device) -> str:
    from django_otp.oath import TOTP

    return f"{TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token():0{device.digits}d}"


def test_deposit_trade_withdraw_operator_approves_with_2fa_statement(
    demo_live_server_url, shard_worker, browser_page, funded, django_user_model
):
    url, page = demo_live_server_url, browser_page
    MarketFactory(symbol="BTC-USD", tick_size=Decimal("0.01"), lot_size=Decimal("0.001"))
    asset_get_or_create(code="ETH")  # an asset the trader never holds: the zero-balance toggle hides it

    # Sign up, then deposit in demo mode: completed at once.
    page.goto(url + "/accounts/signup/")
    page.fill("input[name=username]", "funding-trader")
    page.fill("input[name=password1]", "a-Strong-pass-91")
    page.fill("input[name=password2]", "a-Strong-pass-91")
    page.click("button[type=submit]")
    page.get_by_test_id("nav-funding").click()
    page.select_option("[data-testid=deposit-form] select[name=deposit-asset]", "USD")
    page.fill("[data-testid=deposit-form] input[name=deposit-amount]", "1000")
    page.get_by_test_id("deposit-submit").click()
    me = django_user_model.objects.get(username="funding-trader")
    deposit = FundingRequest.objects.get(user=me, kind="deposit")
    expect(page.get_by_test_id(f"deposit-{deposit.pk}-status")).to_have_text("completed")
    expect(page.get_by_test_id("funding-balance-USD-available")).to_have_text(number("1000"))

    # Buy against another trader's resting sell order (placed through the services) on the trading page.
    seller = funded(BTC="5")
    resting, _ = order_place(user=seller, symbol="BTC-USD", side="sell", price="100", quantity="1")
    page.goto(url + "/markets/BTC-USD/")
    expect(page.get_by_test_id("balance-USD-available")).to_have_text(number("1000"))
    expect(page.get_by_test_id("balance-ETH")).to_be_visible()
    page.get_by_test_id("hide-zero-balances").check()
    expect(page.get_by_test_id("balance-ETH")).to_have_count(0)
    page.get_by_test_id("side-buy").click()
    page.get_by_test_id("order-price").fill("100")
    page.get_by_test_id("order-quantity").fill("1")
    page.get_by_test_id("submit-order").click()
    # 1 BTC less the 0.2% taker fee; 100 USD paid.
    expect(page.get_by_test_id("balance-BTC-available")).to_have_text(number("0.998"))
    expect(page.get_by_test_id("balance-USD-available")).to_have_text(number("900"))
    assert Order.objects.get(pk=resting.pk).status == "filled"
    page.reload()  # the toggle is remembered
    expect(page.get_by_test_id("hide-zero-balances")).to_be_checked()
    expect(page.get_by_test_id("balance-BTC-available")).to_have_text(number("0.998"))
    expect(page.get_by_test_id("balance-ETH")).to_have_count(0)

    # Withdraw: the amount is held at once.
    page.get_by_test_id("funding-link").click()
    page.select_option("[data-testid=withdraw-form] select[name=withdraw-asset]", "USD")
    page.fill("[data-testid=withdraw-form] input[name=withdraw-amount]", "300")
    page.fill("[data-testid=withdraw-form] input[name=withdraw-destination]", "DE89 3704 0044 0532 0130 00")
    page.get_by_test_id("withdraw-submit").click()
    withdrawal = FundingRequest.objects.get(user=me, kind="withdrawal")
    expect(page.get_by_test_id(f"withdrawal-{withdrawal.pk}-status")).to_have_text("pending")
    expect(page.get_by_test_id("funding-balance-USD-available")).to_have_text(number("600"))
    expect(page.get_by_test_id("funding-balance-USD-locked")).to_have_text(number("300"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "funding.png"), full_page=True)

    # An operator signs in to the admin with a TOTP token and approves it.
    operator = operator_create(username="ops-one")
    operator.set_password("ops-Pass-1234")
    operator.save()
    device = TOTPDeviceFactory(user=operator)
    ops = page.context.browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    ops.set_default_timeout(15000)
    ops.goto(url + "/admin/")
    ops.fill("input[name=username]", "ops-one")
    ops.fill("input[name=password]", "ops-Pass-1234")
    ops.fill("input[name=otp_token]", totp_now(device))
    ops.click("input[type=submit][value='Log in']")
    expect(ops.get_by_test_id("overview-link")).to_be_visible()
    ops.goto(url + "/admin/funding/fundingrequest/?status__exact=pending")
    ops.check(f"input[name=_selected_action][value='{withdrawal.pk}']")
    ops.select_option("select[name=action]", "approve_selected")
    ops.click("button[name=index]")
    expect(ops.locator(".messagelist")).to_contain_text("1 request(s) completed")
    ops.goto(url + "/admin/overview/")
    expect(ops.get_by_test_id("custody-USD")).to_be_visible()
    ops.screenshot(path=str(SCREENSHOTS / "operator-overview.png"), full_page=True)

    # The user sees it completed, the hold gone, and every entry on the statement with its balance.
    page.reload()
    expect(page.get_by_test_id(f"withdrawal-{withdrawal.pk}-status")).to_have_text("completed")
    expect(page.get_by_test_id("funding-balance-USD-locked")).to_have_text(number("0"))
    expect(page.get_by_test_id("funding-balance-USD-available")).to_have_text(number("600"))
    page.get_by_test_id("statement-link").click()
    rows = page.locator("[data-testid=statement] tbody tr")
    expect(rows).to_have_count(4)
    got = [[cell.strip() for cell in rows.nth(n).locator("td").all_inner_texts()][1:5] for n in range(rows.count())]
    assert got == [
        ["USD", "withdrawal", "-300", "600"],
        ["BTC", "trade", "0.998", "0.998"],
        ["USD", "trade", "-100", "900"],
        ["USD", "deposit", "1000", "1000"],
    ]
