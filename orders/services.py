"""Markets, and placing and canceling orders. The rules of what an order may be live here."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from exchange_site.db import retry_on_deadlock
from exchange_site.errors import NotFound, RuleViolation
from ledger.services import asset_get_or_create, funds_hold
from matching.queue import CANCEL, PLACE, command_push, top_of_book_get

from .journal import order_accepted_record, order_cancel_requested_record
from .models import Market, Order


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


# --- placing and canceling -------------------------------------------------------------------


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _amount(value, field: str, *, places: int | None = None) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RuleViolation("invalid", f"{field} must be a decimal string.", fields={field: ["Not a number."]})
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise RuleViolation(
            "invalid", f"{field} must be a decimal string.", fields={field: ["Not a number."]}
        ) from None
    if not number.is_finite() or number <= 0:
        raise RuleViolation(
            "invalid", f"{field} must be greater than zero.", fields={field: ["Must be greater than zero."]}
        )
    if number.adjusted() >= 18 or (
        places is not None and number != number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR)
    ):
        raise RuleViolation("invalid", f"{field} has too many digits.", fields={field: ["Too many digits."]})
    return number


def market_for_trading(*, symbol: str) -> Market:
    market = Market.objects.select_related("base", "quote").filter(symbol=str(symbol or "").upper()).first()
    if market is None:
        raise RuleViolation("unknown_market", f"Unknown market {symbol!r}.", fields={"symbol": ["Unknown market."]})
    if market.status != Market.Status.OPEN:
        raise RuleViolation(
            "market_halted", f"Trading in {market.symbol} is halted.", fields={"symbol": ["Market halted."]}
        )
    return market


@retry_on_deadlock
def order_place(
    *,
    user,
    symbol: str,
    side: str,
    type: str = Order.Type.LIMIT,
    quantity=None,
    price=None,
    quote_quantity=None,
    time_in_force: str = Order.TimeInForce.GTC,
    post_only: bool = False,
    stp: str = Order.Stp.CANCEL_NEWEST,
    client_order_id: str | None = None,
) -> tuple[Order, bool]:
    """Validate, hold the funds and record the order as pending, in one transaction; queue it on commit.

    Returns (order, created). The same ``client_order_id`` again returns the existing order and
    places nothing.
    """
    client_order_id = (client_order_id or "").strip() or None
    if client_order_id is not None:
        if len(client_order_id) > 36:
            raise RuleViolation(
                "invalid", "client_order_id has at most 36 characters.", fields={"client_order_id": ["Too long."]}
            )
        existing = Order.objects.filter(user=user, client_order_id=client_order_id).select_related("market").first()
        if existing is not None:
            return existing, False

    market = market_for_trading(symbol=symbol)
    if side not in Order.Side.values:
        raise RuleViolation("invalid", "side is buy or sell.", fields={"side": ["Must be buy or sell."]})
    if type not in Order.Type.values:
        raise RuleViolation("invalid", "type is limit or market.", fields={"type": ["Must be limit or market."]})
    if time_in_force not in Order.TimeInForce.values:
        raise RuleViolation(
            "invalid", "time_in_force is GTC, IOC or FOK.", fields={"time_in_force": ["Must be GTC, IOC or FOK."]}
        )
    if stp not in Order.Stp.values:
        raise RuleViolation(
            "invalid", f"stp is one of {', '.join(Order.Stp.values)}.", fields={"stp": ["Unknown mode."]}
        )
    post_only = bool(post_only)

    price = _amount(price, "price")
    quantity = _amount(quantity, "quantity")
    quote_quantity = _amount(quote_quantity, "quote_quantity", places=market.quote.precision)
    if quantity is not None and quantity % market.lot_size:
        raise RuleViolation(
            "invalid_quantity",
            f"quantity must be a multiple of the lot size {market.lot_size.normalize()}.",
            fields={"quantity": [f"Must be a multiple of {market.lot_size.normalize()}."]},
        )
    protection_price = None
    if type == Order.Type.LIMIT:
        if price is None:
            raise RuleViolation(
                "invalid", "A limit order needs a price.", fields={"price": ["Required for limit orders."]}
            )
        if quantity is None:
            raise RuleViolation("invalid", "A limit order needs a quantity.", fields={"quantity": ["Required."]})
        if quote_quantity is not None:
            raise RuleViolation(
                "invalid", "quote_quantity is for market buys only.", fields={"quote_quantity": ["Market buys only."]}
            )
        if price % market.tick_size:
            raise RuleViolation(
                "invalid_price",
                f"price must be a multiple of the tick size {market.tick_size.normalize()}.",
                fields={"price": [f"Must be a multiple of {market.tick_size.normalize()}."]},
            )
        notional = price * quantity
        hold = notional if side == Order.Side.BUY else quantity
    else:
        if price is not None:
            raise RuleViolation(
                "invalid", "A market order takes no price.", fields={"price": ["Not allowed for market orders."]}
            )
        if post_only:
            raise RuleViolation(
                "invalid",
                "A market order cannot be post-only.",
                fields={"post_only": ["Not allowed for market orders."]},
            )
        if (quantity is None) == (quote_quantity is None):
            raise RuleViolation(
                "invalid",
                "A market order gives either quantity or quote_quantity.",
                fields={"quantity": ["Give quantity or quote_quantity."]},
            )
        if quote_quantity is not None and side == Order.Side.SELL:
            raise RuleViolation(
                "invalid", "quote_quantity is for market buys only.", fields={"quote_quantity": ["Market buys only."]}
            )
        if time_in_force == Order.TimeInForce.GTC:
            time_in_force = Order.TimeInForce.IOC  # a market order never rests
        best_bid, best_ask = (Decimal(p) if p else None for p in top_of_book_get(symbol=market.symbol))
        factor = market.protection_pct / 100
        if side == Order.Side.BUY:
            if best_ask is None:
                raise RuleViolation("no_liquidity", f"No one is selling {market.symbol} right now.")
            protection_price = _ceil_to(best_ask * (1 + factor), market.tick_size)
            notional = quote_quantity if quote_quantity is not None else best_ask * quantity
            hold = quote_quantity if quote_quantity is not None else protection_price * quantity
        else:
            if best_bid is None:
                raise RuleViolation("no_liquidity", f"No one is buying {market.symbol} right now.")
            protection_price = max(_floor_to(best_bid * (1 - factor), market.tick_size), market.tick_size)
            notional = best_bid * quantity
            hold = quantity
    if notional < market.min_notional:
        raise RuleViolation(
            "below_min_notional",
            f"The order is worth less than the minimum {market.min_notional.normalize()} {market.quote.code}.",
            fields={
                "quantity": [f"Order value must be at least {market.min_notional.normalize()} {market.quote.code}."]
            },
        )

    hold_asset = market.quote if side == Order.Side.BUY else market.base
    try:
        with transaction.atomic(durable=True):
            order = Order.objects.create(
                user=user,
                market=market,
                client_order_id=client_order_id,
                side=side,
                type=type,
                price=price,
                quantity=quantity,
                quote_quantity=quote_quantity,
                protection_price=protection_price,
                time_in_force=time_in_force,
                post_only=post_only,
                stp=stp,
                hold_remaining=hold,
            )
            funds_hold(user=user, asset=hold_asset, amount=hold, reference=f"order:{order.pk}:hold")
            order_accepted_record(order=order)
            transaction.on_commit(partial(command_push, shard=market.shard, kind=PLACE, order_id=order.pk), robust=True)
    except IntegrityError:
        # The same client_order_id raced in from a second request: answer with the order that won.
        existing = Order.objects.filter(user=user, client_order_id=client_order_id).select_related("market").first()
        if client_order_id is None or existing is None:
            raise
        return existing, False
    return order, True


@retry_on_deadlock
def order_cancel(*, user, order_id: int) -> Order:
    """Ask the engine to cancel; the request travels the same queue as new orders, behind them."""
    with transaction.atomic(durable=True):
        # Only the order row is locked: joined to its market, the query would lock the market row too
        # (MariaDB has no FOR UPDATE OF), and every settlement inserting that market's trades waits on it.
        order = Order.objects.select_for_update().filter(user=user, pk=order_id).first()
        if order is None:
            raise NotFound("No such order.", code="order_not_found")
        if order.status in Order.FINAL_STATUSES:
            raise RuleViolation("order_not_open", f"The order is already {order.status}.", status_code=400)
        if order.cancel_requested_at is None:
            order.cancel_requested_at = timezone.now()
            order.save(update_fields=["cancel_requested_at", "updated_at"])
            order_cancel_requested_record(order=order)
            transaction.on_commit(
                partial(command_push, shard=order.market.shard, kind=CANCEL, order_id=order.pk), robust=True
            )
    return order
