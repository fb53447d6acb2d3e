"""Fixtures shared by every app's tests. Tests run against the real MariaDB and Redis."""

import pytest

from accounts.tests.factories import UserFactory
from exchange_site.testing import RedisServer, ShardProcess, WebTier
from ledger.services import asset_get_or_create, funds_deposit


def pytest_addoption(parser):
    group = parser.getgroup("stream", "the seeded random stream (orders/tests/test_random_stream.py)")
    group.addoption("--stream-orders", type=int, default=4000, help="orders to send (make soak: 200,000)")
    group.addoption("--stream-seed", type=int, default=1)
    group.addoption("--stream-markets", type=int, default=3, help="markets, one client thread each (at most 6)")
    group.addoption("--stream-users", type=int, default=12)
    group.addoption("--stream-seconds", type=float, default=None, help="stop sending after this long, then check")
    group.addoption(
        "--stream-kills", type=int, default=None, help="faults injected (default: orders / 2000, at least 4)"
    )


@pytest.fixture(autouse=True)
def _ledger_invariants_hold(request):
    """After every test that touched the database, every ledger invariant still holds."""
    uses_db = request.node.get_closest_marker("django_db") is not None or {"db", "transactional_db"} & set(
        request.fixturenames
    )
    if not uses_db:
        yield
        return
    # Depend on the database fixture so this check runs before its rollback or flush.
    request.getfixturevalue("_django_db_helper")
    yield
    from ledger.selectors import ledger_problems
    from orders.selectors import hold_problems

    problems = ledger_problems()
    if request.node.get_closest_marker("bare_holds") is None:
        problems += hold_problems()
    assert problems == [], "ledger invariants broken:\n" + "\n".join(problems)


@pytest.fixture(autouse=True)
def _fresh_redis_keys(settings):
    """Each test starts with none of this run's Redis keys (queues, depth, top of book)."""
    from exchange_site import redis as redis_

    client = redis_.client()
    keys = list(client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def usd(db):
    return asset_get_or_create(code="USD", precision=8)


@pytest.fixture
def btc(db):
    return asset_get_or_create(code="BTC", precision=8)


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def funded(db, usd, btc):
    """A factory of users with money: funded(USD="1000", BTC="2")."""

    def make(**balances):
        trader = UserFactory()
        for code, amount in balances.items():
            funds_deposit(user=trader, asset=asset_get_or_create(code=code), amount=amount)
        return trader

    return make


@pytest.fixture
def shard_worker(transactional_db):
    """Matching shard 0 as a real process against this run's database and Redis prefix."""
    worker = ShardProcess(shard=0).start()
    yield worker
    worker.stop()


@pytest.fixture
def admin_client(client, admin_user):
    """pytest-django's admin_client, with the session verified by a TOTP device as the admin requires."""
    from funding.tests.factories import otp_login

    otp_login(client, admin_user)
    return client


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, which this process and every process it starts then use.

    For tests that lose Redis for real (flush, kill): the shared Redis serves other runs. Request it
    before ``shard_worker`` / ``web_tier`` so they start pointed at it.
    """
    from channels.layers import channel_layers
    from django.conf import settings
    from django.test import override_settings

    from exchange_site import redis as redis_

    server = RedisServer().start()
    layers = {**settings.CHANNEL_LAYERS}
    layers["default"] = {**layers["default"], "CONFIG": {**layers["default"]["CONFIG"], "hosts": [server.url]}}
    override = override_settings(REDIS_URL=server.url, CELERY_BROKER_URL=server.url, CHANNEL_LAYERS=layers)
    override.enable()
    redis_.client.cache_clear()
    channel_layers.backends.clear()
    try:
        yield server
    finally:
        override.disable()
        redis_.client.cache_clear()
        channel_layers.backends.clear()
        server.stop()


@pytest.fixture
def web_tier(transactional_db):
    """Two daphne processes serving this run's database on one listening socket (``web_tier.url``)."""
    tier = WebTier(processes=2).start()
    yield tier
    tier.stop()
