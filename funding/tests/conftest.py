import pytest

# The browser fixtures (daphne on a free port, headless Chromium) are the trading page tests' own.
from marketdata.tests.conftest import browser_page, live_server_url  # noqa: F401


@pytest.fixture
def demo_live_server_url(monkeypatch, request):
    """The live server with demo deposits on: its daphne reads the limit from the environment."""
    monkeypatch.setenv("FUNDING_DEMO_DEPOSIT_LIMIT", "USD=5000,BTC=1")
    return request.getfixturevalue("live_server_url")
