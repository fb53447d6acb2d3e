from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import Count, Sum

from exchange_site.errors import NotFound

from .models import FundingRequest

Kind, Status = FundingRequest.Kind, FundingRequest.Status


def funding_requests_for_user(
    *, user, kind: str, asset: str | None = None, cursor: int | None = None, limit: int = 100
):
    """The user's deposits or withdrawals, newest first; returns (requests, next_cursor)."""
    queryset = FundingRequest.objects.filter(user=user, kind=kind).select_related("asset")
    if asset:
        queryset = queryset.filter(asset__code=asset.upper())
    if cursor:
        queryset = queryset.filter(id__lt=cursor)
    rows = list(queryset.order_by("-id")[: limit + 1])
    return rows[:limit], (rows[limit - 1].pk if len(rows) > limit else None)


def funding_request_for_user(*, user, kind: str, request_id: int) -> FundingRequest:
    request = FundingRequest.objects.select_related("asset").filter(user=user, kind=kind, pk=request_id).first()
    if request is None:
        raise NotFound(f"No such {kind}.", code=f"{kind}_not_found")
    return request


def withdrawal_holds() -> dict[tuple[int, int], Decimal]:
    """What pending withdrawals hold in users' locked balances: {(user_id, asset_id): amount}."""
    held: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    rows = (
        FundingRequest.objects.filter(kind=Kind.WITHDRAWAL, status=Status.PENDING)
        .values_list("user_id", "asset_id")
        .annotate(total=Sum("amount"))
    )
    for user_id, asset_id, total in rows:
        held[(user_id, asset_id)] += total
    return held


def pending_withdrawals_by_asset() -> list[dict]:
    """[{asset, count, amount}] of withdrawals waiting for an operator."""
    return list(
        FundingRequest.objects.filter(kind=Kind.WITHDRAWAL, status=Status.PENDING)
        .values("asset__code")
        .annotate(count=Count("id"), amount=Sum("amount"))
        .order_by("asset__code")
    )


def pending_deposits_count() -> int:
    return FundingRequest.objects.filter(kind=Kind.DEPOSIT, status=Status.PENDING).count()


def operator_overview() -> dict:
    """What an operator checks first: custody per asset, pending withdrawals, open orders, queues, last ledger check."""
    return {
        "custody": custody_by_asset(),
        "pending_withdrawals": pending_withdrawals_by_asset(),
        "pending_deposits": pending_deposits_count(),
        "open_orders": open_orders_by_market(),
        "queues": queue_depths(),
        "ledger_check": last_ledger_check(),
    }


def custody_by_asset() -> list[dict]:
    """Per asset: what users own (available + locked), the fee account, and what the external account says came in.

    ``custody`` is minus the external account's balance (deposits less withdrawals); the ledger makes
    ``users + fees + clearing == custody``, so ``difference`` is zero unless something is broken.
    """
    from ledger.models import LedgerAccount

    Kind = LedgerAccount.Kind
    totals: dict[str, dict] = {}
    rows = LedgerAccount.objects.values("asset__code", "kind").annotate(total=Sum("balance")).order_by("asset__code")
    for row in rows:
        entry = totals.setdefault(
            row["asset__code"],
            {
                "asset": row["asset__code"],
                "users": Decimal(0),
                "fees": Decimal(0),
                "clearing": Decimal(0),
                "custody": Decimal(0),
            },
        )
        if row["kind"] in LedgerAccount.USER_KINDS:
            entry["users"] += row["total"]
        elif row["kind"] == Kind.FEES:
            entry["fees"] += row["total"]
        elif row["kind"] == Kind.CLEARING:
            entry["clearing"] += row["total"]
        elif row["kind"] == Kind.EXTERNAL:
            entry["custody"] -= row["total"]
    for entry in totals.values():
        entry["difference"] = entry["custody"] - entry["users"] - entry["fees"] - entry["clearing"]
    return list(totals.values())


def open_orders_by_market() -> list[dict]:
    from orders.models import Order

    return list(
        Order.objects.filter(status__in=Order.LIVE_STATUSES)
        .values("market__symbol")
        .annotate(count=Count("id"))
        .order_by("market__symbol")
    )


def queue_depths() -> list[dict]:
    """[{shard, depth, error}] for every shard that owns a market: commands waiting in its Redis queue."""
    from exchange_site import redis as redis_
    from matching.queue import queue_key
    from orders.models import Market

    out = []
    for shard in sorted(set(Market.objects.values_list("shard", flat=True))):
        try:
            out.append({"shard": shard, "depth": redis_.client().llen(queue_key(shard)), "error": ""})
        except Exception as exc:  # noqa: BLE001 - an operator page shows a Redis outage, it does not fail on it
            out.append({"shard": shard, "depth": None, "error": str(exc)})
    return out


def last_ledger_check() -> dict | None:
    """The periodic ledger check's last result ({ok, problems, at, seconds}), or None if it never ran."""
    import json

    from exchange_site import redis as redis_

    try:
        raw = redis_.client().get(redis_.key("ledger_check", "last"))
    except Exception as exc:  # noqa: BLE001 - see queue_depths
        return {"ok": None, "problems": [f"Redis: {exc}"], "at": None, "seconds": None}
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"ok": None, "problems": ["unreadable result in Redis"], "at": None, "seconds": None}
