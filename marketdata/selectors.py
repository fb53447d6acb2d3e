"""Reads of market data: markets, level-2 depth (Redis), trades, candles and tickers (MariaDB)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Max, Min, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone

from exchange_site import redis as redis_
from exchange_site.errors import NotFound
from ledger.selectors import balances_for_users as ledger_balances_for_users
from orders.models import Market, Trade
from orders.services import market_lookup

from .format import decimal_str, parse_time, time_str
from .groups import depth_keys

INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def markets_list():
    return Market.objects.select_related("base", "quote").order_by("symbol")


def market_get(*, symbol: str) -> Market:
    # From the per-process market memo (dropped in every process when a market changes): public
    # depth is read far more often than markets change, and needs no database round trip at all.
    market = market_lookup(symbol=symbol)
    if market is None:
        raise NotFound(f"Unknown market {symbol!r}.", code="unknown_market")
    return market


# Depth ---------------------------------------------------------------------------------------


def _sorted_levels(levels: dict[bytes, bytes], *, descending: bool) -> list[list[str]]:
    rows = sorted(((Decimal(price.decode()), price, qty) for price, qty in levels.items()), reverse=descending)
    return [[price.decode(), qty.decode()] for _, price, qty in rows]


# The last levels read per symbol, with their sequence: a read whose sequence is unchanged costs one
# GET and no sort. Replaced whole per symbol (atomic under the GIL); any web thread reads and fills it.
# A second bounds its age, in case a flushed Redis counts its sequence up to the same number again.
_depth_memo: dict[str, tuple[int, float, list, list]] = {}
DEPTH_MEMO_SECONDS = 1.0


def depth_get(*, symbol: str, limit: int | None = None) -> dict:
    """{symbol, sequence, bids, asks}, best first, read in one transaction so the levels match the sequence."""
    bids_key, asks_key, seq_key = depth_keys(symbol)
    memo = _depth_memo.get(symbol)
    if memo is not None and time.monotonic() - memo[1] < DEPTH_MEMO_SECONDS:
        sequence = int(redis_.client().get(seq_key) or 0)
        if sequence != memo[0]:
            memo = None
    if memo is None or time.monotonic() - memo[1] >= DEPTH_MEMO_SECONDS:
        pipe = redis_.client().pipeline(transaction=True)
        pipe.hgetall(bids_key)
        pipe.hgetall(asks_key)
        pipe.get(seq_key)
        bids, asks, sequence = pipe.execute()
        memo = (
            int(sequence or 0),
            time.monotonic(),
            _sorted_levels(bids, descending=True),
            _sorted_levels(asks, descending=False),
        )
        _depth_memo[symbol] = memo
    sequence, _, bids, asks = memo
    if limit is not None:
        bids, asks = bids[:limit], asks[:limit]
    return {"symbol": symbol, "sequence": sequence, "bids": bids, "asks": asks}


# Trades --------------------------------------------------------------------------------------


def trades_list(*, market: Market, limit: int, before_id: int | None = None) -> list[dict]:
    """The market's latest trades, newest first; ``before_id`` pages back from a trade id."""
    trades = Trade.objects.filter(market=market)
    if before_id is not None:
        trades = trades.filter(id__lt=before_id)
    return list(trades.order_by("-id").values("id", "price", "quantity", "taker_side", "created_at")[:limit])


# Candles -------------------------------------------------------------------------------------


def bucket_start(moment: datetime, interval: str) -> datetime:
    seconds = INTERVALS[interval]
    elapsed = int((moment - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=elapsed - elapsed % seconds)


def candles_list(*, market: Market, interval: str, limit: int, now: datetime | None = None) -> list[dict]:
    """OHLCV of the last ``limit`` intervals that had trades, newest first.

    Computed on read with one GROUP BY over the market's trades in the window (the (market,
    created_at) index bounds the scan) and one look-up of the first and last trade of each bucket:
    open and close are the prices of the lowest and highest trade sequence in the bucket.
    """
    seconds = INTERVALS[interval]
    now = now or timezone.now()
    since = bucket_start(now, interval) - timedelta(seconds=seconds * (limit - 1))
    # TIMESTAMPDIFF on the stored UTC DATETIME does not depend on the session time zone.
    bucket = RawSQL("TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', created_at) DIV %s", (seconds,))
    rows = list(
        Trade.objects.filter(market=market, created_at__gte=since)
        .annotate(bucket=bucket)
        .values("bucket")
        .annotate(
            high=Max("price"),
            low=Min("price"),
            volume=Sum("quantity"),
            first=Min("sequence"),
            last=Max("sequence"),
        )
        .order_by("-bucket")[:limit]
    )
    if not rows:
        return []
    sequences = {row["first"] for row in rows} | {row["last"] for row in rows}
    prices = dict(Trade.objects.filter(market=market, sequence__in=sequences).values_list("sequence", "price"))
    return [
        {
            "open_time": EPOCH + timedelta(seconds=int(row["bucket"]) * seconds),
            "open": prices[row["first"]],
            "high": row["high"],
            "low": row["low"],
            "close": prices[row["last"]],
            "volume": row["volume"],
        }
        for row in rows
    ]


def candle_latest(*, market: Market, interval: str) -> tuple[dict | None, int]:
    """The candle of the market's latest trade and the id of that trade.

    A websocket subscriber reads this once and then folds the trades it receives with a higher id
    into it (see ``candle_merge``), so live candles cost no query per trade.
    """
    latest = Trade.objects.filter(market=market).order_by("-id").values("id", "created_at").first()
    if latest is None:
        return None, 0
    start = bucket_start(latest["created_at"], interval)
    trades = list(
        Trade.objects.filter(
            market=market,
            created_at__gte=start,
            created_at__lt=start + timedelta(seconds=INTERVALS[interval]),
            id__lte=latest["id"],
        )
        .order_by("sequence")
        .values_list("price", "quantity")
    )
    candle = {
        "open_time": start,
        "open": trades[0][0],
        "high": max(price for price, _ in trades),
        "low": min(price for price, _ in trades),
        "close": trades[-1][0],
        "volume": sum((quantity for _, quantity in trades), Decimal(0)),
    }
    return candle, latest["id"]


def candle_merge(candle: dict | None, trade: dict, interval: str) -> dict:
    """Fold one trade (API shape: strings) into the current candle; a trade of a later interval opens a new one."""
    price, quantity = Decimal(trade["price"]), Decimal(trade["quantity"])
    start = bucket_start(parse_time(trade["created_at"]), interval)
    if candle is None or start > candle["open_time"]:
        return {"open_time": start, "open": price, "high": price, "low": price, "close": price, "volume": quantity}
    if start < candle["open_time"]:
        return candle  # a late trade of an earlier interval: REST candles have it, the live one does not
    candle["high"] = max(candle["high"], price)
    candle["low"] = min(candle["low"], price)
    candle["close"] = price
    candle["volume"] += quantity
    return candle


def candle_json(candle: dict) -> dict:
    return {
        "open_time": time_str(candle["open_time"]),
        **{field: decimal_str(candle[field]) for field in ("open", "high", "low", "close", "volume")},
    }


# Ticker --------------------------------------------------------------------------------------


def ticker_get(*, market: Market, now: datetime | None = None) -> dict:
    """Last price, best bid and ask, and the last 24 hours' open (first trade), high, low, volume and change."""
    now = now or timezone.now()
    trades = Trade.objects.filter(market=market)
    last = trades.order_by("-sequence").values_list("price", flat=True).first()
    window = trades.filter(created_at__gte=now - timedelta(hours=24)).aggregate(
        high=Max("price"), low=Min("price"), volume=Sum("quantity"), first=Min("sequence")
    )
    open_24h = None
    if window["first"] is not None:
        open_24h = trades.filter(sequence=window["first"]).values_list("price", flat=True).first()
    depth = depth_get(symbol=market.symbol, limit=1)
    change = pct = None
    if open_24h is not None and last is not None:
        change = last - open_24h
        pct = (change * 100 / open_24h).quantize(Decimal("0.01"))
    return {
        "symbol": market.symbol,
        "last": last,
        "bid": Decimal(depth["bids"][0][0]) if depth["bids"] else None,
        "ask": Decimal(depth["asks"][0][0]) if depth["asks"] else None,
        "open_24h": open_24h,
        "high_24h": window["high"],
        "low_24h": window["low"],
        "volume_24h": window["volume"] or Decimal(0),
        "change_24h": change,
        "change_pct_24h": pct,
    }


def ticker_json(ticker: dict) -> dict:
    return {key: value if key == "symbol" else decimal_str(value) for key, value in ticker.items()}


# Balances ------------------------------------------------------------------------------------


def balances_for_users(*, user_ids) -> dict[int, list[dict]]:
    """ledger's balances_for_users with amounts as API strings."""
    return {
        user_id: [
            {"asset": row["asset"], "available": decimal_str(row["available"]), "locked": decimal_str(row["locked"])}
            for row in rows
        ]
        for user_id, rows in ledger_balances_for_users(user_ids=user_ids).items()
    }
