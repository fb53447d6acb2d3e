from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from ledger.models import LedgerAccount

from .models import Order


def hold_problems() -> list[str]:
    """A user's locked balance of an asset must equal what their live orders still hold."""
    held: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
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
            problems.append(f"account {key}: locked {balance} but live orders hold {held.get(pair, Decimal(0))}")
    return problems
