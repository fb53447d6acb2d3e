"""The Swagger UI at /api/docs in a real headless Chromium, with every asset served by this site."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_shows_the_operations_offline(live_server_url, browser_page):
    page = browser_page
    foreign = []

    def only_this_site(route):
        if route.request.url.startswith(live_server_url):
            return route.continue_()
        foreign.append(route.request.url)
        return route.abort()

    page.route("**/*", only_this_site)
    page.goto(live_server_url + "/api/docs")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/orders/{order_id}").first).to_be_visible()
    assert operations.count() >= 11
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    assert {"/api/v1/markets", "/api/v1/orders", "/api/v1/balances", "/api/v1/fills"} <= {
        path.replace("\u200b", "") for path in paths
    }
    # The "Authorize" dialog offers the token and the signed-request headers.
    page.get_by_role("button", name="Authorize").click()
    dialog = page.locator(".modal-ux")
    expect(dialog).to_contain_text("tokenAuth")
    expect(dialog).to_contain_text("X-API-Signature")
    assert foreign == []
