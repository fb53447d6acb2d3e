"""Candles and the 24-hour ticker equal a direct computation from the trades."""

import random
import types
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from orders.models import Order, Trade
from orders.tests.factories import MarketFactory

pytestmark = pytest.mark.django_db

INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}


@pytest.fixture
def trades(db, monkeypatch):
    """200 trades over the last 30 hours; the API reads the clock at the same moment as the test.

    Otherwise a minute (or hour, or day) boundary passing between the two moves the API's window
    one candle on, and the expected and returned candles differ for no fault of the code.
    """
    market = MarketFactory()
    maker, taker = UserFactory(), UserFactory()

    def order(user, side):
        return Order.objects.create(
            user=user,
            market=market,
            side=side,
            type="limit",
            price=Decimal(1),
            quantity=Decimal(1),
            status=Order.Status.FILLED,
            filled_quantity=Decimal(1),
            filled_quote=Decimal(1),
        )

    buy, sell = order(maker, "buy"), order(taker, "sell")
    rng = random.Random(11)
    now = timezone.now()
    monkeypatch.setattr("marketdata.selectors.timezone", types.SimpleNamespace(now=lambda: now))
    rows = []
    for _sequence in range(1, 201):
        # Spread over the last 30 hours so the 24-hour window and several candles of each size are exercised.
        moment = now - timedelta(seconds=rng.randint(0, 30 * 3600))
        rows.append((moment, Decimal(rng.randint(9000, 11000)) / 100, Decimal(rng.randint(1, 500)) / 1000))
    rows.sort()
    Trade.objects.bulk_create(
        Trade(
            market=market,
            sequence=n,
            maker_order=buy,
            taker_order=sell,
            maker_user=maker,
            taker_user=taker,
            taker_side="sell",
            price=price,
            quantity=quantity,
            created_at=moment,
        )
        for n, (moment, price, quantity) in enumerate(rows, start=1)
    )
    return market, rows, now


def expected_candles(rows, seconds):
    buckets = defaultdict(list)
    for moment, price, quantity in rows:
        buckets[int(moment.timestamp()) // seconds].append((price, quantity))
    out = []
    for bucket in sorted(buckets, reverse=True):
        fills = buckets[bucket]
        out.append(
            {
                "open_time": datetime.fromtimestamp(bucket * seconds, UTC),
                "open": fills[0][0],
                "high": max(p for p, _ in fills),
                "low": min(p for p, _ in fills),
                "close": fills[-1][0],
                "volume": sum(q for _, q in fills),
            }
        )
    return out


@pytest.mark.parametrize("interval", list(INTERVALS))
def test_candles_match_the_trades(trades, interval):
    market, rows, now = trades
    limit = 5
    window_start = datetime.fromtimestamp(
        (int(now.timestamp()) // INTERVALS[interval] - (limit - 1)) * INTERVALS[interval], UTC
    )
    expected = expected_candles([r for r in rows if r[0] >= window_start], INTERVALS[interval])[:limit]
    got = APIClient().get(f"/api/v1/markets/{market.symbol}/candles", {"interval": interval, "limit": limit}).json()
    parsed = [
        {
            "open_time": datetime.fromisoformat(c["open_time"].replace("Z", "+00:00")),
            **{key: Decimal(c[key]) for key in ("open", "high", "low", "close", "volume")},
        }
        for c in got
    ]
    assert parsed == expected


def test_ticker_matches_the_last_24_hours_of_trades(trades):
    market, rows, now = trades
    window = [r for r in rows if r[0] >= now - timedelta(hours=24)]
    ticker = APIClient().get(f"/api/v1/markets/{market.symbol}/ticker").json()
    assert Decimal(ticker["last"]) == rows[-1][1]
    assert Decimal(ticker["open_24h"]) == window[0][1]
    assert Decimal(ticker["high_24h"]) == max(p for _, p, _ in window)
    assert Decimal(ticker["low_24h"]) == min(p for _, p, _ in window)
    assert Decimal(ticker["volume_24h"]) == sum(q for _, _, q in window)
    assert Decimal(ticker["change_24h"]) == rows[-1][1] - window[0][1]


def test_bad_market_data_requests_are_4xx_in_the_error_format(trades):
    client = APIClient()
    assert client.get("/api/v1/markets/NOPE-USD/ticker").status_code == 404
    response = client.get("/api/v1/markets/BTC-USD/candles", {"interval": "7m"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert client.get("/api/v1/markets/BTC-USD/depth", {"limit": "-1"}).status_code == 400
