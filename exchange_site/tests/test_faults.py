"""MariaDB or Redis down, seen by a real daphne through a TCP proxy that the test cuts and restores.

The shared services stay up; only the processes under test lose them. The web answers 503 in the
error format within about a second, never a 500 or a hang, and what it accepted still trades.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from accounts.services import token_create
from exchange_site.testing import BASE_DIR, PYTHON, ShardProcess, TcpProxy, free_port, subprocess_env
from orders.models import Order
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Web:
    """One daphne process serving this run's test database, through the given service addresses."""

    def __init__(self, *, database_url: str, redis_url: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        (BASE_DIR / "artifacts").mkdir(exist_ok=True)
        self.log = open(BASE_DIR / "artifacts" / f"faults-daphne-{self.port}.log", "wb")  # noqa: SIM115
        env = subprocess_env(ALLOWED_HOSTS="127.0.0.1", REDIS_URL=redis_url)
        env["DATABASE_URL"] = database_url
        self.process = subprocess.Popen(
            [str(Path(PYTHON).with_name("daphne")), "-p", str(self.port), "exchange_site.asgi:application"],
            env=env,
            cwd=BASE_DIR,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while self.call("GET", "/healthz")[0] != 200:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("daphne did not start")
            time.sleep(0.2)

    def call(self, method: str, path: str, body=None, *, token=None, accept="application/json"):
        """(status, parsed body, seconds); status 0 when nothing answered."""
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Accept": accept}
            | ({"Authorization": f"Token {token}"} if token else {}),
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except OSError:
            return 0, None, time.monotonic() - started
        seconds = time.monotonic() - started
        try:
            return status, json.loads(raw), seconds
        except ValueError:
            return status, raw.decode(errors="replace"), seconds

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self.log.close()


def database_url_via(proxy: TcpProxy) -> str:
    db = connection.settings_dict
    return f"mysql://{db['USER']}:{db['PASSWORD']}@127.0.0.1:{proxy.port}/{db['NAME']}"


def redis_url_via(proxy: TcpProxy) -> str:
    parts = urllib.parse.urlsplit(settings.REDIS_URL)
    netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))


@pytest.fixture
def proxies():
    db = connection.settings_dict
    redis_parts = urllib.parse.urlsplit(settings.REDIS_URL)
    with (
        TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 3306)) as mariadb,
        TcpProxy(redis_parts.hostname, redis_parts.port or 6379) as redis,
    ):
        yield mariadb, redis


@pytest.fixture
def stack(proxies, monkeypatch, transactional_db):
    """daphne through both proxies; shard 0 through the Redis proxy (its database stays up)."""
    mariadb, redis = proxies
    monkeypatch.setenv("REDIS_URL", redis_url_via(redis))
    shard = ShardProcess(shard=0).start()
    web = Web(database_url=database_url_via(mariadb), redis_url=redis_url_via(redis))
    yield web, shard
    web.stop()
    shard.stop()


def wait_for(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def order_status(order_id: int) -> str:
    return Order.objects.values_list("status", flat=True).get(pk=order_id)


def test_redis_down_answers_503_fast_and_accepted_orders_trade_when_it_is_back(stack, proxies, funded):
    web, _ = stack
    _, redis = proxies
    MarketFactory()
    seller, buyer = funded(BTC="1"), funded(USD="10000")
    _, seller_token = token_create(user=seller)
    _, buyer_token = token_create(user=buyer)
    status, sell, _ = web.call(
        "POST",
        "/api/v1/orders",
        {"symbol": "BTC-USD", "side": "sell", "price": "100", "quantity": "0.5"},
        token=seller_token,
    )
    assert status == 201
    wait_for(lambda: order_status(sell["id"]) == "open")

    redis.cut()
    status, body, seconds = web.call("GET", "/healthz")
    assert (status, body["redis"].startswith("down"), body["database"]) == (503, True, "ok")
    # A market order needs the top of the book, which lives in Redis: refused, quickly, changing nothing.
    market_buy = {"symbol": "BTC-USD", "side": "buy", "type": "market", "quantity": "0.1"}
    status, body, seconds = web.call("POST", "/api/v1/orders", market_buy, token=buyer_token)
    assert status == 503 and body["error"]["code"] == "service_unavailable", body
    assert seconds < 1.5
    # A limit order too: the door cannot see that a shard is alive nor queue it, so it says so at once.
    limit_buy = {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.5"}
    status, body, seconds = web.call("POST", "/api/v1/orders", limit_buy, token=buyer_token)
    assert status == 503 and body["error"]["code"] == "service_unavailable" and seconds < 1.5, body
    assert Order.objects.filter(user=buyer).count() == 0  # the refused orders left nothing behind

    redis.restore()
    # The order accepted before the outage is still there and trades once Redis is back.
    wait_for(lambda: web.call("GET", "/healthz")[0] == 200)
    status, buy, _ = web.call("POST", "/api/v1/orders", limit_buy, token=buyer_token)
    assert status == 201, buy
    wait_for(lambda: order_status(buy["id"]) == "filled")
    assert order_status(sell["id"]) == "filled"


def test_mariadb_down_answers_503_in_the_error_format_and_healthz_says_so(stack, proxies, funded):
    web, _ = stack
    mariadb, _ = proxies
    MarketFactory()
    trader = funded(USD="1000")
    _, token = token_create(user=trader)
    assert web.call("GET", "/api/v1/balances", token=token)[0] == 200

    mariadb.cut()
    for method, path, body in (
        ("GET", "/api/v1/balances", None),
        ("POST", "/api/v1/orders", {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.1"}),
        ("GET", "/api/v1/markets", None),
    ):
        status, answer, seconds = web.call(method, path, body, token=token)
        assert status == 503, (path, answer)
        assert answer["error"]["code"] == "service_unavailable" and answer["error"]["message"]
        assert seconds < 1.5, (path, seconds)
    status, page, _ = web.call("GET", "/", accept="text/html")
    assert status == 503 and "Service unavailable" in page
    status, health, _ = web.call("GET", "/healthz")
    assert status == 503 and health["database"].startswith("down") and health["redis"] == "ok"

    mariadb.restore()
    status, balances, _ = web.call("GET", "/api/v1/balances", token=token)
    assert status == 200 and {row["asset"]: Decimal(row["available"]) for row in balances}["USD"] == 1000
    assert not Order.objects.exists()
