"""Markets, and placing and canceling orders. The rules of what an order may be live here."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from exchange_site.errors import RuleViolation
from ledger.services import asset_get_or_create

from .models import Market


def _decimal(value, field: str, *, allow_zero: bool = False) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RuleViolation(
            "invalid", f"{field} must be a decimal number.", fields={field: ["Not a number."]}
        ) from None
    if not number.is_finite() or number < 0 or (number == 0 and not allow_zero):
        raise RuleViolation("invalid", f"{field} must be positive.", fields={field: ["Must be positive."]})
    return number


def market_create(
    *,
    symbol: str,
    tick_size,
    lot_size,
    min_notional=Decimal(0),
    maker_fee=Decimal("0.001"),
    taker_fee=Decimal("0.002"),
    shard: int = 0,
) -> Market:
    symbol = (symbol or "").strip().upper()
    base_code, sep, quote_code = symbol.partition("-")
    if not sep or not base_code or not quote_code or base_code == quote_code:
        raise RuleViolation(
            "invalid_symbol", "A symbol is BASE-QUOTE, like BTC-USD.", fields={"symbol": ["Use BASE-QUOTE."]}
        )
    tick = _decimal(tick_size, "tick_size")
    lot = _decimal(lot_size, "lot_size")
    maker = _decimal(maker_fee, "maker_fee", allow_zero=True)
    taker = _decimal(taker_fee, "taker_fee", allow_zero=True)
    if maker >= 1 or taker >= 1:
        raise RuleViolation("invalid_fee", "Fees are rates below 1 (0.001 is 0.1%).")
    base = asset_get_or_create(code=base_code)
    quote = asset_get_or_create(code=quote_code)
    unit = Decimal(1).scaleb(-quote.precision)
    # Every trade's notional (a multiple of tick x lot) must be exactly representable in the quote asset.
    if (tick * lot) % unit or lot % Decimal(1).scaleb(-base.precision):
        raise RuleViolation(
            "invalid_increments",
            f"tick_size x lot_size must be a multiple of {unit} {quote.code}, and lot_size of the {base.code} precision.",
        )
    market, created = Market.objects.get_or_create(
        symbol=symbol,
        defaults={
            "base": base,
            "quote": quote,
            "tick_size": tick,
            "lot_size": lot,
            "min_notional": _decimal(min_notional, "min_notional", allow_zero=True),
            "maker_fee": maker,
            "taker_fee": taker,
            "shard": shard,
        },
    )
    if not created:
        raise RuleViolation("market_exists", f"Market {symbol} already exists.", status_code=409)
    return market


def market_set_status(*, market: Market, status: str) -> Market:
    if status not in Market.Status.values:
        raise RuleViolation("invalid_status", f"Market status is one of {', '.join(Market.Status.values)}.")
    Market.objects.filter(pk=market.pk).update(status=status)
    market.status = status
    return market
