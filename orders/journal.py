"""The order lifecycle journal: one immutable ``OrderEvent`` per state change, in the change's transaction.

Two writers. The door (order placement and cancel requests) writes ``accepted`` and
``cancel_requested``, one INSERT per transaction of placed or canceled orders. Settlement writes everything the
engine decided (``opened``, ``partially_filled`` / ``filled`` per fill, ``canceled``, ``expired``,
``rejected``) set-based, in the batch's transaction: one INSERT ... SELECT (``batch_events_insert``) builds
them from the batch's order rows and trades that the transaction has just written, so a batch costs one
more statement, and no event is rendered as SQL text or parsed.

An order's row equals the fold of its events (``order_fold``): the status of its last state event,
the filled figures of its last event, and a cancel request iff a ``cancel_requested`` event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection

from exchange_site.db import datetime_literal, insert_rows

from .models import Order, OrderEvent, Trade

E = OrderEvent.Type
# Plain strings: these are compared once per order of every batch.
FILLED, EXPIRED, REJECTED = Order.Status.FILLED.value, Order.Status.EXPIRED.value, Order.Status.REJECTED.value
ENDED_WITHOUT_FILL = {Order.Status.CANCELED.value, EXPIRED, REJECTED}  # each has an event of its own name
STATUS_OF_EVENT = {
    E.ACCEPTED.value: Order.Status.PENDING.value,
    E.OPENED.value: Order.Status.OPEN.value,
    E.PARTIALLY_FILLED.value: Order.Status.PARTIALLY_FILLED.value,
    E.FILLED.value: FILLED,
    E.CANCELED.value: Order.Status.CANCELED.value,
    E.EXPIRED.value: EXPIRED,
    E.REJECTED.value: REJECTED,
}
EVENT_COLUMNS = (
    "order_id",
    "type",
    "at",
    "filled_quantity",
    "filled_quote",
    "remaining_quantity",
    "price",
    "quantity",
    "reason",
)
ZERO = Decimal(0)


# --- the door --------------------------------------------------------------------------------


def orders_accepted_insert(*, orders: Sequence[Order], now: datetime) -> None:
    """``accepted`` for newly placed orders: one INSERT, inside the transaction that inserts them."""
    stamp = datetime_literal(now)
    rows = []
    for order in orders:
        # remaining is NULL for a market buy by quote_quantity: it has no base quantity yet.
        rows.append((order.pk, E.ACCEPTED.value, stamp, ZERO, ZERO, order.quantity, order.price, order.quantity, ""))
    insert_rows(OrderEvent._meta.db_table, EVENT_COLUMNS, rows)


def cancels_requested_insert(*, rows: Sequence[tuple], at: datetime) -> None:
    """``cancel_requested`` for rows of (order_id, filled_quantity, filled_quote, quantity): one INSERT,
    inside the transaction that sets their ``cancel_requested_at``."""
    stamp = datetime_literal(at)
    events = []
    for order_id, filled_quantity, filled_quote, quantity in rows:
        remaining = quantity - filled_quantity if quantity is not None else None
        events.append(
            (order_id, E.CANCEL_REQUESTED.value, stamp, filled_quantity, filled_quote, remaining, None, None, "")
        )
    insert_rows(OrderEvent._meta.db_table, EVENT_COLUMNS, events)


# --- settlement ------------------------------------------------------------------------------


def opened_ids(*, fills, orders: Iterable) -> set[int]:
    """The orders of one engine batch that came to rest before anything else happened to them in it.

    Call it before settlement stamps the orders (``updated_at``): an order the worker loaded as
    pending still has ``updated_at == created_at`` then; one that was not the taker of a fill rested
    first (and was then filled as a maker, canceled, or still rests).
    """
    takers = {fill.taker.id for fill in fills}
    return {
        order.id
        for order in orders
        if order.updated_at == order.created_at and order.id not in takers and order.status not in (EXPIRED, REJECTED)
    }


# Every event of a batch from what its transaction has already written, in one INSERT ... SELECT: the
# staged order rows (their figures after the batch, the order's quantity, whether it ``opened``) and
# the batch's trades. Nothing is rendered or parsed per event. Per order, oldest first: ``opened``,
# then one event per fill in execution order (trade id), its figures the order's after the batch less
# its later fills in the batch (``filled`` for the last one of an order that ends filled), then its end.
BATCH_EVENTS_SQL = """
INSERT INTO {events} ({columns})
SELECT order_id, type, at, filled_quantity, filled_quote, remaining_quantity, price, quantity, reason FROM (
  SELECT s.id AS order_id, 0 AS phase, 0 AS trade_id, 'opened' AS type, s.updated_at AS at,
         0 AS filled_quantity, 0 AS filled_quote, s.quantity AS remaining_quantity,
         NULL AS price, NULL AS quantity, '' AS reason
  FROM {staged} s WHERE s.opened
  UNION ALL
  SELECT s.id, 1, f.trade_id,
         IF(f.later IS NULL AND s.status = 'filled', 'filled', 'partially_filled'), s.updated_at,
         s.filled_quantity - COALESCE(f.later, 0), s.filled_quote - COALESCE(f.later_quote, 0),
         IF(f.later IS NULL AND s.status = 'filled', 0, s.quantity - s.filled_quantity + COALESCE(f.later, 0)),
         f.price, f.quantity, ''
  FROM (
    SELECT order_id, trade_id, price, quantity,
           SUM(quantity) OVER later_fills AS later, SUM(price * quantity) OVER later_fills AS later_quote
    FROM (
      SELECT maker_order_id AS order_id, id AS trade_id, price, quantity FROM {trades} WHERE {batch_trades}
      UNION ALL
      SELECT taker_order_id, id, price, quantity FROM {trades} WHERE {batch_trades}
    ) fill
    WINDOW later_fills AS (PARTITION BY order_id ORDER BY trade_id ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
  ) f
  JOIN {staged} s ON s.id = f.order_id
  UNION ALL
  SELECT s.id, 2, 0, s.status, s.updated_at, s.filled_quantity, s.filled_quote, 0, NULL, NULL, s.reject_reason
  FROM {staged} s WHERE s.status IN ('canceled', 'expired', 'rejected')
) event
ORDER BY order_id, phase, trade_id
"""


def batch_events_insert(*, staged: str, trade_ids: Sequence[int], market_ids: Iterable[int]) -> None:
    """Write a batch's events; inside the batch's transaction, after its order rows and its trades.

    ``staged`` is the table of the batch's order rows (``orders/settlement.py``) with their ``quantity``
    and ``opened``; ``trade_ids`` the ids of the trades the batch inserted, in the shard's ``market_ids``
    (only the shard writes trades of its markets, so the id range holds no other batch's).
    """
    if trade_ids:
        markets = ", ".join(str(int(market_id)) for market_id in sorted(set(market_ids)))
        batch_trades = f"id BETWEEN {int(min(trade_ids))} AND {int(max(trade_ids))} AND market_id IN ({markets})"
    else:
        batch_trades = "FALSE"
    sql = BATCH_EVENTS_SQL.format(
        events=OrderEvent._meta.db_table,
        columns=", ".join(EVENT_COLUMNS),
        staged=staged,
        trades=Trade._meta.db_table,
        batch_trades=batch_trades,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)


# --- the fold --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderFold:
    status: str | None
    filled_quantity: Decimal
    filled_quote: Decimal
    cancel_requested: bool
    reject_reason: str


def order_fold(events: Iterable) -> OrderFold:
    """What an order's row must say, from its events oldest first (``OrderEvent`` rows or alike)."""
    status, filled, quote, cancel_requested, reason = None, ZERO, ZERO, False, ""
    for event in events:
        filled, quote = event.filled_quantity, event.filled_quote
        if event.type == E.CANCEL_REQUESTED:
            cancel_requested = True
            continue
        status = STATUS_OF_EVENT[event.type]
        if status in ENDED_WITHOUT_FILL:
            reason = event.reason
    return OrderFold(status, filled, quote, cancel_requested, reason)


def order_row_fold(order: Order) -> OrderFold:
    """The same figures read from an order's row, to compare with ``order_fold``."""
    return OrderFold(
        order.status,
        order.filled_quantity,
        order.filled_quote,
        order.cancel_requested_at is not None,
        order.reject_reason if order.status in ENDED_WITHOUT_FILL else "",
    )
