"""ExecutionReport (8) fields for the gateway's orders: pure functions of order and fill objects.

The shard publishes, per settled batch and per user, the full order objects whose state changed and
the user's fills (the shapes of orders/serializers.py). One order in one batch may have several
fills and end in any state, so its reports are rebuilt from them: one Trade (F) per fill with the
running CumQty and AvgPx, then one Canceled (4) / Expired (C) / Rejected (8) if it ended so.
A change to "open" alone gives no report: the order was reported New when the door accepted it.
"""

from __future__ import annotations

from decimal import Decimal

from orders.serializers import AVERAGE_PRICE_UNIT, dec

from .protocol import Fields

SIDE = {"buy": "1", "sell": "2"}
SIDE_FROM_FIX = {value: key for key, value in SIDE.items()}
ORD_TYPE = {"market": "1", "limit": "2"}
ORD_TYPE_FROM_FIX = {value: key for key, value in ORD_TYPE.items()}
TIME_IN_FORCE = {"GTC": "1", "IOC": "3", "FOK": "4", "GTD": "6"}
TIME_IN_FORCE_FROM_FIX = {value: key for key, value in TIME_IN_FORCE.items()}

# ExecType (150) and OrdStatus (39)
EXEC_NEW, EXEC_TRADE, EXEC_CANCELED, EXEC_EXPIRED, EXEC_REJECTED, EXEC_STATUS = "0", "F", "4", "C", "8", "I"
ORD_STATUS = {
    "pending": "0",
    "open": "0",
    "partially_filled": "1",
    "filled": "2",
    "canceled": "4",
    "expired": "C",
    "rejected": "8",
}
FINAL_EXEC_TYPE = {"canceled": EXEC_CANCELED, "expired": EXEC_EXPIRED, "rejected": EXEC_REJECTED}

# OrdRejReason (103) by RuleViolation code; anything else is 99 (other).
ORD_REJ_REASON = {
    "unknown_market": "1",
    "market_halted": "2",
    "insufficient_funds": "3",
    "order_not_found": "5",
    "unsupported": "11",
}


def cl_ord_id_of(order: dict) -> str:
    """Orders placed without a client id (over REST) still need a ClOrdID: their own id."""
    return order.get("client_order_id") or str(order["id"])


def execution_report(
    order: dict,
    *,
    exec_id: str,
    exec_type: str,
    ord_status: str,
    cum_qty: str,
    leaves_qty: str,
    avg_px: str,
    last: tuple[str, str] | None = None,
    text: str | None = None,
    cl_ord_id: str | None = None,
    orig_cl_ord_id: str | None = None,
) -> Fields:
    fields: Fields = [
        (37, str(order["id"])),
        (11, cl_ord_id or cl_ord_id_of(order)),
    ]
    if orig_cl_ord_id:
        fields.append((41, orig_cl_ord_id))
    fields += [
        (17, exec_id),
        (150, exec_type),
        (39, ord_status),
        (55, order["symbol"]),
        (54, SIDE[order["side"]]),
        (40, ORD_TYPE[order["type"]]),
    ]
    if order.get("quantity"):
        fields.append((38, order["quantity"]))
    if order.get("quote_quantity"):
        fields.append((152, order["quote_quantity"]))
    if order.get("price"):
        fields.append((44, order["price"]))
    fields.append((59, TIME_IN_FORCE[order["time_in_force"]]))
    if last is not None:
        fields += [(31, last[0]), (32, last[1])]
    fields += [(14, cum_qty), (151, leaves_qty), (6, avg_px)]
    if text:
        fields.append((58, text))
    return fields


def new_report(order: dict) -> Fields:
    """The acknowledgement that the door accepted the order (held its funds and queued it)."""
    return execution_report(
        order,
        exec_id=f"{order['id']}-new",
        exec_type=EXEC_NEW,
        ord_status=ORD_STATUS["open"],
        cum_qty="0",
        leaves_qty=order.get("quantity") or "0",
        avg_px="0",
    )


def status_report(order: dict, *, exec_id: str, text: str | None = None) -> Fields:
    """ExecType I (order status): the answer to a NewOrderSingle whose ClOrdID names an existing order."""
    return execution_report(
        order,
        exec_id=exec_id,
        exec_type=EXEC_STATUS,
        ord_status=ORD_STATUS[order["status"]],
        cum_qty=order["filled_quantity"],
        leaves_qty=order["remaining_quantity"],
        avg_px=order["average_price"] or "0",
        text=text,
    )


def _average(quote: Decimal, quantity: Decimal) -> str:
    return dec((quote / quantity).quantize(AVERAGE_PRICE_UNIT).normalize()) if quantity else "0"


def reports_for_event(order: dict, fills: list[dict], *, cancel_cl_ord_id: str | None = None) -> list[Fields]:
    """The reports one published order object and its fills of the same batch give."""
    status = order["status"]
    filled = Decimal(order["filled_quantity"])
    quantity = Decimal(order["quantity"]) if order.get("quantity") else None
    fills = sorted(fills, key=lambda fill: fill["id"])
    cum = filled - sum((Decimal(fill["quantity"]) for fill in fills), Decimal(0))
    # Earlier fills are known only through the (rounded) average; exact whenever they are the first.
    quote = (
        Decimal(0)
        if not cum
        else Decimal(order["average_price"] or 0) * filled
        - sum((Decimal(f["price"]) * Decimal(f["quantity"]) for f in fills), Decimal(0))
    )
    reports = []
    for index, fill in enumerate(fills):
        price, size = Decimal(fill["price"]), Decimal(fill["quantity"])
        cum += size
        quote += price * size
        last = index == len(fills) - 1
        ord_status = "2" if last and status == "filled" else "1"
        if last and status in ("filled", "canceled", "expired", "rejected"):
            leaves = Decimal(0)
        else:
            leaves = quantity - cum if quantity is not None else Decimal(order["remaining_quantity"])
        reports.append(
            execution_report(
                order,
                exec_id=f"{order['id']}-fill-{fill['id']}",
                exec_type=EXEC_TRADE,
                ord_status=ord_status,
                cum_qty=dec(cum),
                leaves_qty=dec(leaves),
                avg_px=order["average_price"] if last and cum == filled else _average(quote, cum),
                last=(fill["price"], fill["quantity"]),
            )
        )
    if status in FINAL_EXEC_TYPE:
        reports.append(
            execution_report(
                order,
                exec_id=f"{order['id']}-{status}",
                exec_type=FINAL_EXEC_TYPE[status],
                ord_status=ORD_STATUS[status],
                cum_qty=dec(filled),
                leaves_qty="0",
                avg_px=order["average_price"] or "0",
                text=order.get("reject_reason"),
                # A cancel the session asked for is reported under the cancel request's ClOrdID.
                cl_ord_id=cancel_cl_ord_id if status == "canceled" else None,
                orig_cl_ord_id=cl_ord_id_of(order) if cancel_cl_ord_id and status == "canceled" else None,
            )
        )
    return reports


def door_reject(fields_in: dict, *, exec_id: str, text: str, reason: str) -> Fields:
    """ExecutionReport rejected for an order the door refused: there is no order id (37=NONE)."""
    fields: Fields = [
        (37, "NONE"),
        (11, fields_in.get("cl_ord_id") or "NONE"),
        (17, exec_id),
        (150, EXEC_REJECTED),
        (39, ORD_STATUS["rejected"]),
        (103, reason),
    ]
    for tag, key in ((55, "symbol"), (54, "side"), (40, "ord_type"), (38, "quantity"), (44, "price")):
        if fields_in.get(key):
            fields.append((tag, fields_in[key]))
    fields += [(14, "0"), (151, "0"), (6, "0"), (58, text)]
    return fields
