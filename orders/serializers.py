"""The order, fill and trade objects of API.md, shared by the REST API and the websocket pushes."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from .models import Order, Trade


def dec(value: Decimal | None) -> str | None:
    """A Decimal as the API writes it: a plain string, no exponent, no trailing zeros."""
    if value is None:
        return None
    if not value:
        return "0"  # never "-0"
    return _dec_text(value)


# Equal values give equal text, and prices and sizes repeat: the shard worker renders every order
# and fill it settles, so the text is remembered.
@lru_cache(maxsize=100_000)
def _dec_text(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _iso_or_none(moment) -> str | None:
    return iso(moment) if moment is not None else None


def order_data(order: Order, *, symbol: str | None = None) -> dict:
    return {**order_fixed_data(order, symbol=symbol or order.market.symbol), **order_state_data(order)}


def order_fixed_data(order: Order, *, symbol: str) -> dict:
    """The fields an order never changes after placement (the shard worker renders them once per order)."""
    return {
        "id": order.pk,
        "client_order_id": order.client_order_id,
        "symbol": symbol,
        "side": order.side,
        "type": order.type,
        "price": dec(order.price),
        "quantity": dec(order.quantity),
        "quote_quantity": dec(order.quote_quantity),
        "time_in_force": order.time_in_force,
        "post_only": order.post_only,
        "stp": order.stp,
        # The shard worker's live-order rows may not carry expire_at; only GTD orders have one.
        "expire_at": _iso_or_none(getattr(order, "expire_at", None)),
        "created_at": iso(order.created_at),
    }


def order_state_data(order: Order, *, updated_at: str | None = None) -> dict:
    """The fields matching changes; ``updated_at`` may come rendered (one stamp for a whole batch)."""
    remaining = Decimal(0)
    if order.quantity is not None and order.status not in Order.FINAL_STATUSES:
        remaining = order.quantity - order.filled_quantity
    average = order.filled_quote / order.filled_quantity if order.filled_quantity else None
    return {
        "status": order.status,
        "filled_quantity": dec(order.filled_quantity),
        "remaining_quantity": dec(remaining),
        "average_price": dec(average.quantize(AVERAGE_PRICE_UNIT).normalize()) if average is not None else None,
        "reject_reason": order.reject_reason or None,
        "updated_at": updated_at or iso(order.updated_at),
    }


AVERAGE_PRICE_UNIT = Decimal(1).scaleb(-12)


def fills_of_trade(trade: Trade, *, user_id: int, symbol: str, base_code: str, quote_code: str) -> list[dict]:
    """The user's fills in a trade: one as maker, one as taker, or both for a self-trade."""
    fills = []
    for liquidity, order_id, trade_user, fee, side in (
        (
            "maker",
            trade.maker_order_id,
            trade.maker_user_id,
            trade.maker_fee,
            "sell" if trade.taker_side == "buy" else "buy",
        ),
        ("taker", trade.taker_order_id, trade.taker_user_id, trade.taker_fee, trade.taker_side),
    ):
        if trade_user != user_id:
            continue
        fills.append(
            {
                "id": trade.pk * 2 + (1 if liquidity == "taker" else 0),
                "trade_id": trade.pk,
                "order_id": order_id,
                "symbol": symbol,
                "side": side,
                "price": dec(trade.price),
                "quantity": dec(trade.quantity),
                "fee": dec(fee),
                # Fees are charged in the asset the user receives.
                "fee_asset": base_code if side == "buy" else quote_code,
                "liquidity": liquidity,
                "created_at": iso(trade.created_at),
            }
        )
    return fills


def trade_public_data(trade: Trade) -> dict:
    return {
        "id": trade.pk,
        "price": dec(trade.price),
        "quantity": dec(trade.quantity),
        "taker_side": trade.taker_side,
        "created_at": iso(trade.created_at),
    }


def order_event_data(event, *, sequence: int) -> dict:
    """One entry of ``GET /orders/{id}/events``; ``sequence`` counts the order's events from 1."""
    return {
        "sequence": sequence,
        "type": event.type,
        "at": iso(event.at),
        "filled_quantity": dec(event.filled_quantity),
        "remaining_quantity": dec(event.remaining_quantity),
        "price": dec(event.price),
        "quantity": dec(event.quantity),
        "reason": event.reason or None,
    }
