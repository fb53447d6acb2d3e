"""Orders as the shard finds them in the database: pending rows with their funds held."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from ledger.services import funds_hold
from matching.queue import PLACE, command_push
from orders.models import Market, Order


def pending_order_create(*, user, market: Market, side: str, push: bool = True, hold=None, **fields) -> Order:
    """A pending order inserted directly (an old client, a bug, a door that let it through), as order_place
    leaves it: the row, its hold, and (``push``) its command on the shard's queue."""
    if hold is None:
        if side == Order.Side.SELL:
            hold = fields["quantity"]
        else:
            hold = fields.get("quote_quantity") or Decimal(fields["price"]) * Decimal(fields["quantity"])
    with transaction.atomic():
        order = Order.objects.create(user=user, market=market, side=side, hold_remaining=hold, **fields)
        asset = market.quote if side == Order.Side.BUY else market.base
        funds_hold(user=user, asset=asset, amount=hold, reference=f"order:{order.pk}:hold")
    if push:
        command_push(shard=market.shard, kind=PLACE, order_id=order.pk)
    return order
