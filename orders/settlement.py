"""Settling one batch of the matching engine's results in ONE database transaction.

The shard worker hands over what the engine decided (trades at the maker's price, the new state of
every order it touched); this module turns it into trades, order rows and ledger transfers:

- a trade moves the buyer's locked quote to the seller and the seller's locked base to the buyer,
  each side paying its fee (maker or taker rate) in the asset it receives, to the fee account;
  the money passes through the asset's clearing account, netted per account within the batch, so
  a batch writes a few transfers per user it touched rather than four per trade;
- whatever an order holds beyond what its resting remainder still needs is released to the
  owner's available balance (price improvement, canceled/expired/rejected remainders, the unspent
  part of a market buy).

Every transfer carries a reference derived from the batch's first and last trade (market and
per-market sequence, both unique), and every trade row its (market, sequence), so settling the same
batch twice fails on the unique constraints instead of moving money twice.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_UP, Decimal

from django.db import connection, transaction
from django.utils import timezone

from exchange_site.db import datetime_literal, insert_rows, sql_text, values_chunks
from ledger.models import Asset, LedgerAccount, Transfer
from ledger.services import Posting, accounts_get_or_create, transfers_post

from . import journal
from .models import Market, Order, Trade

AVAILABLE, LOCKED = LedgerAccount.Kind.AVAILABLE.value, LedgerAccount.Kind.LOCKED.value
FEES, CLEARING = LedgerAccount.Kind.FEES.value, LedgerAccount.Kind.CLEARING.value
Account = tuple[int | None, int, str]  # (user id or None for a system account, asset id, kind)
# Plain strings for the per-fill loops: an attribute of a choices enum costs a lookup each time.
BUY = Order.Side.BUY.value
LIVE = (Order.Status.OPEN.value, Order.Status.PARTIALLY_FILLED.value)
TRADE, FEE, RELEASE = Transfer.Kind.TRADE.value, Transfer.Kind.FEE.value, Transfer.Kind.RELEASE.value


@dataclass(slots=True)
class LiveOrder:
    """An order the worker is handling: what settlement changes, and what the order object shows."""

    id: int
    user_id: int
    market_id: int
    side: str
    type: str
    price: Decimal | None
    quantity: Decimal | None
    quote_quantity: Decimal | None
    time_in_force: str
    post_only: bool
    stp: str
    client_order_id: str | None
    created_at: datetime
    updated_at: datetime
    status: str
    filled_quantity: Decimal
    filled_quote: Decimal
    hold_remaining: Decimal
    sequence: int | None = None
    reject_reason: str = ""
    remaining: Decimal = Decimal(0)  # resting quantity after this batch
    protection_price: Decimal | None = None
    fixed_data: dict | None = None  # the order's unchanging API fields, rendered once for its events
    expire_at: datetime | None = None  # GTD orders: when the shard expires what still rests

    @property
    def pk(self) -> int:
        return self.id


@dataclass(slots=True)
class Fill:
    market: Market
    sequence: int
    maker: LiveOrder
    taker: LiveOrder
    price: Decimal
    quantity: Decimal


@dataclass(slots=True)
class SettledTrade:
    """A trade as written (the Trade row's fields), without the cost of a model instance per fill."""

    market: Market
    sequence: int
    maker_order_id: int
    taker_order_id: int
    maker_user_id: int
    taker_user_id: int
    taker_side: str
    price: Decimal
    quantity: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    created_at: datetime
    pk: int | None = None

    @property
    def market_id(self) -> int:
        return self.market.id


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
    if order.status not in LIVE:
        return Decimal(0)
    return order.remaining * order.price if order.side == BUY else order.remaining


@dataclass(slots=True)
class PreparedBatch:
    """Everything one batch writes, computed up front so the shard can match the next batch meanwhile."""

    postings: list[Posting]
    order_rows: list[str]  # rendered SQL VALUES chunks
    trade_rows: list[str]
    trades: list[SettledTrade]


@dataclass(frozen=True, slots=True)
class Fence:
    """What proves, inside a batch's transaction, that its writer may still write.

    ``join`` is a JOIN clause (with ``params``) that finds exactly one row while the writer may write and
    none once it may not. The UPDATE of the batch's order rows joins it: the proof costs no round trip of
    its own, the statement changes nothing when it fails, and the row stays share-locked until the
    commit, so whoever takes over and locks that row for update waits for the commit. ``check`` is the
    same proof as a statement of its own, for a batch without order rows; ``lost`` the error to raise.
    """

    join: str
    params: tuple
    check: Callable[[], None]
    lost: Callable[[], Exception]


def batch_settle(*, batch: Batch, markets: dict[int, Market]) -> list[SettledTrade]:
    """Settle one engine batch in one transaction. Returns the trades written (with ids)."""
    return batch_write(prepared=batch_prepare(batch=batch, markets=markets))


def batch_prepare(
    *, batch: Batch, markets: dict[int, Market], account_ids: dict[Account, int] | None = None
) -> PreparedBatch:
    """Fees, netted trade legs, releases and the new order rows; updates the in-memory orders.

    ``account_ids`` is the caller's memory of ledger account ids (an account, once created, keeps its
    id for good): only accounts it does not know yet are looked up, and are added to it.
    """
    now = timezone.now()
    # Before the orders are stamped below: the journal tells newly rested orders by their stamp.
    opened = journal.opened_ids(fills=batch.fills, orders=batch.orders.values())
    trades: list[SettledTrade] = []
    assets: dict[int, Asset] = {}
    # Money moves through the asset's clearing account and is netted per account within the batch:
    # each buyer's locked quote and each seller's locked base go in once, each side's proceeds come
    # out once, the fees once per asset. A batch writes a few transfers per user it touched, not
    # four per trade, and the clearing accounts end every batch at zero (ledger_check proves it).
    # Each Trade row keeps its own price, quantity and fees.
    moves: dict[tuple[Account, Account, str], Decimal] = defaultdict(Decimal)

    for fill in batch.fills:
        market = fill.market
        base, quote = market.base, market.quote
        assets[base.id], assets[quote.id] = base, quote
        maker, taker = fill.maker, fill.taker
        buyer, seller = (taker, maker) if taker.side == BUY else (maker, taker)
        notional = fill.price * fill.quantity
        buyer_fee = fee_of(fill.quantity, market.taker_fee if buyer is taker else market.maker_fee, base)
        seller_fee = fee_of(notional, market.taker_fee if seller is taker else market.maker_fee, quote)
        clearing_quote, clearing_base = (None, quote.id, CLEARING), (None, base.id, CLEARING)
        moves[((buyer.user_id, quote.id, LOCKED), clearing_quote, TRADE)] += notional
        moves[(clearing_quote, (seller.user_id, quote.id, AVAILABLE), TRADE)] += notional - seller_fee
        moves[(clearing_quote, (None, quote.id, FEES), FEE)] += seller_fee
        moves[((seller.user_id, base.id, LOCKED), clearing_base, TRADE)] += fill.quantity
        moves[(clearing_base, (buyer.user_id, base.id, AVAILABLE), TRADE)] += fill.quantity - buyer_fee
        moves[(clearing_base, (None, base.id, FEES), FEE)] += buyer_fee
        buyer.hold_remaining -= notional
        seller.hold_remaining -= fill.quantity
        trades.append(
            SettledTrade(
                market,
                fill.sequence,
                maker.id,
                taker.id,
                maker.user_id,
                taker.user_id,
                taker.side,
                fill.price,
                fill.quantity,
                buyer_fee if buyer is maker else seller_fee,
                buyer_fee if buyer is taker else seller_fee,
                now,
            )
        )

    for order in batch.orders.values():
        order.updated_at = now
        excess = order.hold_remaining - required_hold(order)
        if excess < 0:
            raise AssertionError(f"order {order.id} holds {order.hold_remaining}, needs {required_hold(order)}")
        if excess:
            market = markets[order.market_id]
            asset = market.quote if order.side == BUY else market.base
            assets[asset.id] = asset
            # What each order no longer needs (price improvement, an ended remainder) is netted per
            # user and asset too; the order row's hold_remaining says what each still holds.
            moves[((order.user_id, asset.id, LOCKED), (order.user_id, asset.id, AVAILABLE), RELEASE)] += excess
            order.hold_remaining -= excess

    moves = {key: amount for key, amount in moves.items() if amount > 0}
    account_ids = {} if account_ids is None else account_ids
    unknown = {account for accounts in moves for account in accounts[:2] if account not in account_ids}
    if unknown:
        account_ids.update(
            accounts_get_or_create(specs={(user_id, assets[asset_id], kind) for user_id, asset_id, kind in unknown})
        )
    batch_ref = _batch_reference(batch)
    postings = [
        Posting(
            debit_id=account_ids[debit],
            credit_id=account_ids[credit],
            asset_id=debit[1],
            amount=amount,
            kind=kind,
            reference=f"{batch_ref}:{n}",
        )
        for n, ((debit, credit, kind), amount) in enumerate(moves.items())
    ]

    # Rendered here, off the committing thread, by one format per row: this runs for every order and
    # trade of the batch. Every value is an int, a finite Decimal, a fixed status word or escaped text.
    # An order row also carries what the journal needs beyond it: the order's quantity and ``opened``.
    stamp = datetime_literal(now)
    order_rows = values_chunks(
        [
            f"({o.id},'{o.status}',{o.filled_quantity:f},{o.filled_quote:f},{o.hold_remaining:f},"
            f"{'NULL' if o.sequence is None else int(o.sequence)},{sql_text(o.reject_reason[:40])},{stamp},"
            f"{'NULL' if o.quantity is None else f'{o.quantity:f}'},{1 if o.id in opened else 0})"
            for o in batch.orders.values()
        ]
    )
    trade_rows = values_chunks(
        [
            f"({t.market.id},{t.sequence},{t.maker_order_id},{t.taker_order_id},{t.maker_user_id},"
            f"{t.taker_user_id},'{t.taker_side}',{t.price:f},{t.quantity:f},{t.maker_fee:f},{t.taker_fee:f},{stamp})"
            for t in trades
        ]
    )
    return PreparedBatch(postings=postings, order_rows=order_rows, trade_rows=trade_rows, trades=trades)


def batch_write(*, prepared: PreparedBatch, fence: Fence | None = None) -> list[SettledTrade]:
    """The one transaction: order rows, trades, ledger transfers.

    ``fence`` proves the caller may still write (the shard worker: it still holds its shard's lock)
    before anything else is written, or raises and nothing is written.
    The ledger comes last: its account rows are the ones order placement and other shards (the
    fee accounts) wait for, so they stay locked only for the transfers and the commit.
    """
    trades = prepared.trades
    with transaction.atomic(durable=True):
        if prepared.order_rows:
            _orders_update(prepared.order_rows, fence)
        elif fence is not None:
            fence.check()
        ids = insert_rows(
            Trade._meta.db_table,
            TRADE_COLUMNS,
            rendered=prepared.trade_rows,
            returning="id",
        )
        if prepared.order_rows:
            # After the order rows are locked by the update: a cancel request's event can't slip in between.
            journal.batch_events_insert(
                staged=SETTLE_ORDERS, trade_ids=ids, market_ids={trade.market.id for trade in trades}
            )
        transfers_post(postings=prepared.postings, savepoint=False)
    for trade, trade_id in zip(trades, ids, strict=True):
        trade.pk = trade_id
    return trades


def _batch_reference(batch: Batch) -> str:
    """Unique per batch: the markets and trade sequences it covers (both unique), or a random key."""
    if batch.fills:
        first, last = batch.fills[0], batch.fills[-1]
        return f"settle:{first.market.pk}.{first.sequence}-{last.market.pk}.{last.sequence}"
    return f"settle:{uuid.uuid4().hex}"


TRADE_COLUMNS = [
    "market_id",
    "sequence",
    "maker_order_id",
    "taker_order_id",
    "maker_user_id",
    "taker_user_id",
    "taker_side",
    "price",
    "quantity",
    "maker_fee",
    "taker_fee",
    "created_at",
]


# The batch's order rows, staged for one UPDATE ... JOIN and the journal's INSERT ... SELECT. A temporary
# table lives as long as its connection: created once per connection, emptied per batch.
SETTLE_ORDERS = "settle_orders"


def _orders_update(rows: list[str], fence: Fence | None) -> None:
    """One UPDATE ... JOIN for every order row the batch changed; with ``fence``, it proves it first."""
    table = Order._meta.db_table
    with connection.cursor() as cursor:
        raw = connection.connection
        if not getattr(raw, "settle_orders_table", False):
            # quantity and opened are the journal's (journal.batch_events_insert), not the order row's.
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {SETTLE_ORDERS} ("
                " id BIGINT PRIMARY KEY, status VARCHAR(16), filled_quantity DECIMAL(36,18),"
                " filled_quote DECIMAL(36,18), hold_remaining DECIMAL(36,18), sequence BIGINT NULL,"
                " reject_reason VARCHAR(40), updated_at DATETIME(6), quantity DECIMAL(36,18) NULL, opened BOOL)"
            )
            raw.settle_orders_table = True
        cursor.execute(f"DELETE FROM {SETTLE_ORDERS}")
    insert_rows(
        SETTLE_ORDERS,
        [
            "id",
            "status",
            "filled_quantity",
            "filled_quote",
            "hold_remaining",
            "sequence",
            "reject_reason",
            "updated_at",
            "quantity",
            "opened",
        ],
        rendered=rows,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            # Driven by the small table: a scan of the orders table would wait on rows that
            # concurrent order placements are inserting.
            f"UPDATE {SETTLE_ORDERS} s STRAIGHT_JOIN {table} o ON o.id = s.id {fence.join if fence else ''}"
            " SET o.status = s.status,"
            " o.filled_quantity = s.filled_quantity, o.filled_quote = s.filled_quote,"
            " o.hold_remaining = s.hold_remaining, o.sequence = s.sequence, o.reject_reason = s.reject_reason,"
            " o.updated_at = s.updated_at",
            fence.params if fence else None,
        )
        # Rows matched, changed or not (the connection counts found rows): none when the fence row was not found.
        if fence is not None and cursor.rowcount == 0:
            raise fence.lost()
