from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import Q

from exchange_site.errors import NotFound
from ledger.models import LedgerAccount
from ledger.selectors import consistent_snapshot, ledger_problems

from .models import Order, Trade
from .serializers import fills_of_trade, order_event_data


def hold_problems() -> list[str]:
    """A user's locked balance of an asset must equal what their live orders and pending withdrawals still hold."""
    from funding.selectors import withdrawal_holds

    held: dict[tuple[int, int], Decimal] = defaultdict(Decimal, withdrawal_holds())
    rows = Order.objects.filter(status__in=Order.LIVE_STATUSES).values_list(
        "user_id", "side", "market__base_id", "market__quote_id", "hold_remaining"
    )
    for user_id, side, base_id, quote_id, remaining in rows:
        held[(user_id, quote_id if side == Order.Side.BUY else base_id)] += remaining
    problems = []
    for final_id in (
        Order.objects.filter(status__in=Order.FINAL_STATUSES)
        .exclude(hold_remaining=0)
        .values_list("id", flat=True)[:20]
    ):
        problems.append(f"order {final_id}: final but still holds funds")
    locked = {
        (user_id, asset_id): (key, balance)
        for user_id, asset_id, key, balance in LedgerAccount.objects.filter(kind=LedgerAccount.Kind.LOCKED).values_list(
            "user_id", "asset_id", "key", "balance"
        )
    }
    for pair in sorted(set(held) | set(locked)):
        key, balance = locked.get(pair, (f"user:{pair[0]}:asset#{pair[1]}:locked", Decimal(0)))
        if balance != held.get(pair, Decimal(0)):
            problems.append(
                f"account {key}: locked {balance} but live orders and pending withdrawals hold {held.get(pair, Decimal(0))}"
            )
    return problems


def exchange_problems() -> list[str]:
    """Every broken ledger invariant, holds included, all read from one snapshot: exact while trading goes on."""
    with consistent_snapshot():
        return ledger_problems() + hold_problems()


def _page(queryset, *, cursor, limit: int):
    if cursor:
        queryset = queryset.filter(id__lt=cursor)
    rows = list(queryset.order_by("-id")[: limit + 1])
    return rows[:limit], (rows[limit - 1].pk if len(rows) > limit else None)


def orders_for_user(
    *, user, symbol: str | None = None, status: str = "all", cursor: int | None = None, limit: int = 100
):
    """The user's orders, newest first; returns (orders, next_cursor)."""
    queryset = Order.objects.filter(user=user).select_related("market")
    if symbol:
        queryset = queryset.filter(market__symbol=symbol.upper())
    if status == "open":
        queryset = queryset.filter(status__in=Order.LIVE_STATUSES)
    elif status == "closed":
        queryset = queryset.filter(status__in=Order.FINAL_STATUSES)
    return _page(queryset, cursor=cursor, limit=limit)


def order_for_user(*, user, order_id: int) -> Order:
    order = Order.objects.select_related("market").filter(user=user, pk=order_id).first()
    if order is None:
        raise NotFound("No such order.", code="order_not_found")
    return order


def fills_for_user(*, user, symbol: str | None = None, order_id: int | None = None, cursor=None, limit: int = 100):
    """The user's fills (API shape), newest first; returns (fills, next_cursor)."""
    queryset = Trade.objects.filter(Q(maker_user=user) | Q(taker_user=user)).select_related(
        "market__base", "market__quote"
    )
    if symbol:
        queryset = queryset.filter(market__symbol=symbol.upper())
    if order_id:
        queryset = queryset.filter(Q(maker_order_id=order_id) | Q(taker_order_id=order_id))
    trades, next_cursor = _page(queryset, cursor=cursor, limit=limit)
    fills = []
    for trade in trades:
        market = trade.market
        for fill in fills_of_trade(
            trade, user_id=user.pk, symbol=market.symbol, base_code=market.base.code, quote_code=market.quote.code
        ):
            if not order_id or fill["order_id"] == int(order_id):
                fills.append(fill)
    fills.sort(key=lambda fill: -fill["id"])
    return fills, next_cursor


def order_for_client_id(*, user, client_order_id: str) -> Order:
    """The user's order with this client_order_id; another user's is not found."""
    order = Order.objects.select_related("market").filter(user=user, client_order_id=client_order_id).first()
    if order is None:
        raise NotFound("No such order.", code="order_not_found")
    return order


def order_events_for_user(*, user, order_id: int) -> list[dict]:
    """The journal of one of the user's orders, oldest first (another user's order is not found)."""
    order = order_for_user(user=user, order_id=order_id)
    events = order.events.order_by("id")
    return [order_event_data(event, sequence=n) for n, event in enumerate(events, start=1)]
