"""The order lifecycle journal: one immutable ``OrderEvent`` per state change, in the change's transaction.

Two writers. The door (order placement and cancel requests) writes ``accepted`` and
``cancel_requested``, one INSERT per transaction of placed or canceled orders. Settlement writes everything the
engine decided (``opened``, ``partially_filled`` / ``filled`` per fill, ``canceled``, ``expired``,
``rejected``) set-based: the rows are rendered with the rest of the batch on the matching thread
(``batch_event_rows``) and written by one multi-row INSERT per 5,000 rows in the batch's transaction
(``events_insert``), so a batch costs one more statement, not one per event.

An order's row equals the fold of its events (``order_fold``): the status of its last state event,
the filled figures of its last event, and a cancel request iff a ``cancel_requested`` event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from exchange_site.db import datetime_literal, insert_rows, sql_text, values_chunks

from .models import Order, OrderEvent

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


def batch_event_rows(*, fills, orders: Iterable, now: datetime) -> list[str]:
    """The rendered event rows of one engine batch, oldest first per order.

    Call it before settlement stamps the orders (``updated_at``): an order the worker loaded as
    pending still has ``updated_at == created_at`` then, which is how an order that came to rest in
    this very batch, before a fill or a cancel reached it, gets its ``opened``.
    ``fills`` are in execution order; each order already carries its figures after the batch.
    """
    stamp = datetime_literal(now)
    by_order: dict[int, list] = defaultdict(list)
    takers = set()
    for fill in fills:
        by_order[fill.maker.id].append(fill)
        by_order[fill.taker.id].append(fill)
        takers.add(fill.taker.id)
    rows: list[str] = []
    add = rows.append
    for order in orders:
        oid, status, quantity = order.id, order.status, order.quantity
        own = by_order.get(oid, ())
        filled, quote = order.filled_quantity, order.filled_quote
        for fill in own:
            filled -= fill.quantity
            quote -= fill.price * fill.quantity
        if order.updated_at == order.created_at and oid not in takers and status not in (EXPIRED, REJECTED):
            # It rested before anything else happened to it in this batch.
            rest = "NULL" if quantity is None else f"{quantity - filled:f}"
            add(f"({oid},'opened',{stamp},{filled:f},{quote:f},{rest},NULL,NULL,'')")
        last = len(own) - 1
        for n, fill in enumerate(own):
            filled += fill.quantity
            quote += fill.price * fill.quantity
            if n == last and status == FILLED:
                add(f"({oid},'filled',{stamp},{filled:f},{quote:f},0,{fill.price:f},{fill.quantity:f},'')")
            else:
                rest = "NULL" if quantity is None else f"{quantity - filled:f}"
                add(
                    f"({oid},'partially_filled',{stamp},{filled:f},{quote:f},{rest},"
                    f"{fill.price:f},{fill.quantity:f},'')"
                )
        if status in ENDED_WITHOUT_FILL:
            add(f"({oid},'{status}',{stamp},{filled:f},{quote:f},0,NULL,NULL,{sql_text(order.reject_reason[:40])})")
    return values_chunks(rows)


def events_insert(rendered: list[str]) -> None:
    """Write a batch's rendered events; inside the batch's transaction."""
    if rendered:
        insert_rows(OrderEvent._meta.db_table, EVENT_COLUMNS, rendered=rendered)


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
