"""Settling one batch of the matching engine's results in ONE database transaction.

The shard worker hands over what the engine decided (trades at the maker's price, the new state of
every order it touched); this module turns it into trades, order rows and ledger transfers:

- a trade moves the buyer's locked quote to the seller and the seller's locked base to the buyer,
  each side paying its fee (maker or taker rate) in the asset it receives, to the fee account;
- whatever an order holds beyond what its resting remainder still needs is released to the
  owner's available balance (price improvement, canceled/expired/rejected remainders, the unspent
  part of a market buy).

Every transfer carries a reference derived from the trade's per-market sequence or the order id,
so settling the same batch twice fails on the unique constraints instead of moving money twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal

from django.db import connection, transaction
from django.utils import timezone

from ledger.models import Asset, LedgerAccount, Transfer
from ledger.services import Posting, accounts_get_or_create, transfers_post

from .models import Market, Order, Trade

AVAILABLE, LOCKED, FEES = LedgerAccount.Kind.AVAILABLE, LedgerAccount.Kind.LOCKED, LedgerAccount.Kind.FEES


@dataclass(slots=True)
class LiveOrder:
    """What settlement needs to know of an order; the worker keeps one per order it is handling."""

    id: int
    user_id: int
    market_id: int
    side: str
    price: Decimal | None
    status: str
    filled_quantity: Decimal
    filled_quote: Decimal
    hold_remaining: Decimal
    sequence: int | None = None
    reject_reason: str = ""
    remaining: Decimal = Decimal(0)  # resting quantity after this batch


@dataclass(slots=True)
class Fill:
    market: Market
    sequence: int
    maker: LiveOrder
    taker: LiveOrder
    price: Decimal
    quantity: Decimal


@dataclass
class Batch:
    fills: list[Fill] = field(default_factory=list)
    orders: dict[int, LiveOrder] = field(default_factory=dict)  # every order whose row changes


def fee_of(amount: Decimal, rate: Decimal, asset: Asset) -> Decimal:
    # Rounded up to the asset's smallest unit: the exchange never undercharges by a fraction.
    if not rate:
        return Decimal(0)
    return (amount * rate).quantize(Decimal(1).scaleb(-asset.precision), rounding=ROUND_UP)


def required_hold(order: LiveOrder) -> Decimal:
    """What a live order must keep locked for its resting remainder."""
    if order.status not in (Order.Status.OPEN, Order.Status.PARTIALLY_FILLED):
        return Decimal(0)
    return order.remaining * order.price if order.side == Order.Side.BUY else order.remaining


def batch_settle(*, batch: Batch, markets: dict[int, Market]) -> list[Trade]:
    """Write one engine batch atomically. Returns the Trade rows created (with ids)."""
    now = timezone.now()
    trades: list[Trade] = []
    legs: list[
        tuple[int, Asset, int, str, Decimal, str, str]
    ] = []  # payer, asset, payee, payee_kind, amount, kind, ref

    for fill in batch.fills:
        market = fill.market
        buyer, seller = (fill.taker, fill.maker) if fill.taker.side == Order.Side.BUY else (fill.maker, fill.taker)
        notional = fill.price * fill.quantity
        buyer_rate = market.taker_fee if buyer is fill.taker else market.maker_fee
        seller_rate = market.taker_fee if seller is fill.taker else market.maker_fee
        buyer_fee = fee_of(fill.quantity, buyer_rate, market.base)  # buyer receives base
        seller_fee = fee_of(notional, seller_rate, market.quote)  # seller receives quote
        ref = f"trade:{market.pk}:{fill.sequence}"
        legs += [
            (
                buyer.user_id,
                market.quote,
                seller.user_id,
                AVAILABLE,
                notional - seller_fee,
                Transfer.Kind.TRADE,
                f"{ref}:quote",
            ),
            (buyer.user_id, market.quote, None, FEES, seller_fee, Transfer.Kind.FEE, f"{ref}:quote-fee"),
            (
                seller.user_id,
                market.base,
                buyer.user_id,
                AVAILABLE,
                fill.quantity - buyer_fee,
                Transfer.Kind.TRADE,
                f"{ref}:base",
            ),
            (seller.user_id, market.base, None, FEES, buyer_fee, Transfer.Kind.FEE, f"{ref}:base-fee"),
        ]
        buyer.hold_remaining -= notional
        seller.hold_remaining -= fill.quantity
        trades.append(
            Trade(
                market=market,
                sequence=fill.sequence,
                maker_order_id=fill.maker.id,
                taker_order_id=fill.taker.id,
                maker_user_id=fill.maker.user_id,
                taker_user_id=fill.taker.user_id,
                taker_side=fill.taker.side,
                price=fill.price,
                quantity=fill.quantity,
                maker_fee=buyer_fee if buyer is fill.maker else seller_fee,
                taker_fee=buyer_fee if buyer is fill.taker else seller_fee,
                created_at=now,
            )
        )

    for order in batch.orders.values():
        excess = order.hold_remaining - required_hold(order)
        if excess < 0:
            raise AssertionError(f"order {order.id} holds {order.hold_remaining}, needs {required_hold(order)}")
        if excess:
            market = markets[order.market_id]
            asset = market.quote if order.side == Order.Side.BUY else market.base
            # An order releases at most twice: what its resting remainder no longer needs once it is placed
            # (price improvement), and everything left when it ends. The reference names which.
            stage = "placed" if required_hold(order) else "final"
            legs.append(
                (
                    order.user_id,
                    asset,
                    order.user_id,
                    AVAILABLE,
                    excess,
                    Transfer.Kind.RELEASE,
                    f"order:{order.id}:release:{stage}",
                )
            )
            order.hold_remaining -= excess

    legs = [leg for leg in legs if leg[4] > 0]
    account_ids = accounts_get_or_create(
        specs={(payer, asset, LOCKED) for payer, asset, *_ in legs}
        | {(payee, asset, payee_kind) for _, asset, payee, payee_kind, *_ in legs}
    )
    postings = [
        Posting(
            debit_id=account_ids[(payer, asset.id, LOCKED)],
            credit_id=account_ids[(payee, asset.id, payee_kind)],
            asset_id=asset.id,
            amount=amount,
            kind=kind,
            reference=ref,
        )
        for payer, asset, payee, payee_kind, amount, kind, ref in legs
    ]

    with transaction.atomic(durable=True):
        transfers_post(postings=postings)
        _orders_update(batch.orders.values(), now)
        Trade.objects.bulk_create(trades, batch_size=2000)
    return trades


def _orders_update(orders, now) -> None:
    """One UPDATE ... JOIN for every order row the batch changed."""
    rows = [
        (o.id, o.status, o.filled_quantity, o.filled_quote, o.hold_remaining, o.sequence, o.reject_reason[:40], now)
        for o in orders
    ]
    if not rows:
        return
    table = Order._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS settle_orders ("
            " id BIGINT PRIMARY KEY, status VARCHAR(16), filled_quantity DECIMAL(36,18), filled_quote DECIMAL(36,18),"
            " hold_remaining DECIMAL(36,18), sequence BIGINT NULL, reject_reason VARCHAR(40), updated_at DATETIME(6))"
        )
        cursor.execute("DELETE FROM settle_orders")
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            cursor.execute(
                "INSERT INTO settle_orders VALUES " + ",".join(["(%s,%s,%s,%s,%s,%s,%s,%s)"] * len(chunk)),
                [value for row in chunk for value in row],
            )
        cursor.execute(
            # Driven by the small table: a scan of the orders table would wait on rows that
            # concurrent order placements are inserting, while they wait on our account locks.
            f"UPDATE settle_orders s STRAIGHT_JOIN {table} o ON o.id = s.id SET o.status = s.status,"
            " o.filled_quantity = s.filled_quantity, o.filled_quote = s.filled_quote,"
            " o.hold_remaining = s.hold_remaining, o.sequence = s.sequence, o.reject_reason = s.reject_reason,"
            " o.updated_at = s.updated_at"
        )
