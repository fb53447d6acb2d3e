from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.db import connection
from django.db.models import Q, Sum

from .models import Asset, LedgerAccount, Transfer


def balances_for_user(*, user) -> list[dict]:
    """[{asset, available, locked}] for every asset, zero where the user has nothing."""
    return balances_for_users(user_ids=[user.pk])[user.pk]


def balances_for_users(*, user_ids) -> dict[int, list[dict]]:
    """balances_for_user for many users at once, in two queries."""
    user_ids = {int(user_id) for user_id in user_ids}
    codes = list(Asset.objects.order_by("code").values_list("code", flat=True))
    held: dict[int, dict] = {user_id: {} for user_id in user_ids}
    rows = LedgerAccount.objects.filter(user_id__in=user_ids, kind__in=LedgerAccount.USER_KINDS).values_list(
        "user_id", "asset__code", "kind", "balance"
    )
    for user_id, code, kind, balance in rows:
        held[user_id][(code, kind)] = balance
    zero = Decimal(0)
    return {
        user_id: [
            {
                "asset": code,
                "available": held[user_id].get((code, LedgerAccount.Kind.AVAILABLE), zero),
                "locked": held[user_id].get((code, LedgerAccount.Kind.LOCKED), zero),
            }
            for code in codes
        ]
        for user_id in user_ids
    }


def balance_of(*, user, asset_code: str, kind: str = LedgerAccount.Kind.AVAILABLE) -> Decimal:
    row = LedgerAccount.objects.filter(user=user, asset__code=asset_code, kind=kind).values_list("balance", flat=True)
    return row.first() or Decimal(0)


def ledger_problems() -> list[str]:
    """Every broken ledger invariant, as readable lines; empty when the ledger is sound."""
    problems: list[str] = []
    for row in LedgerAccount.objects.values("asset__code").annotate(total=Sum("balance")).order_by("asset__code"):
        if row["total"] != 0:
            problems.append(f"asset {row['asset__code']}: balances sum to {row['total']}, not 0")
    accounts = LedgerAccount._meta.db_table
    transfers = Transfer._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT a.`key`, a.balance, COALESCE(c.total, 0) - COALESCE(d.total, 0)
            FROM {accounts} a
            LEFT JOIN (SELECT credit_account_id AS id, SUM(amount) AS total FROM {transfers} GROUP BY credit_account_id) c
                ON c.id = a.id
            LEFT JOIN (SELECT debit_account_id AS id, SUM(amount) AS total FROM {transfers} GROUP BY debit_account_id) d
                ON d.id = a.id
            WHERE a.balance <> COALESCE(c.total, 0) - COALESCE(d.total, 0)
            ORDER BY a.id
            """
        )
        for key, balance, expected in cursor.fetchall():
            problems.append(f"account {key}: balance {balance} but its transfers sum to {expected}")
    for key, balance in (
        LedgerAccount.objects.filter(kind=LedgerAccount.Kind.CLEARING).exclude(balance=0).values_list("key", "balance")
    ):
        problems.append(f"account {key}: a clearing account holds {balance} after its batches committed, not 0")
    for key, balance in LedgerAccount.objects.filter(kind__in=LedgerAccount.USER_KINDS, balance__lt=0).values_list(
        "key", "balance"
    ):
        problems.append(f"account {key}: negative balance {balance}")
    return problems


def statement_for_user(
    *, user, asset: str | None = None, cursor: int | None = None, limit: int | None = 100
) -> tuple[list[dict], int | None]:
    """The user's ledger entries, newest first, each with the balance it left; returns (entries, next_cursor).

    The balance is the user's total of the asset (available + locked): what they own. Moves between
    their own available and locked balances (order and withdrawal holds, releases) change nothing
    they own and are not entries. ``amount`` is signed: positive in, negative out. ``limit=None``
    returns every entry (the CSV download).
    """
    with consistent_snapshot():
        accounts = LedgerAccount.objects.filter(user=user, kind__in=LedgerAccount.USER_KINDS)
        if asset:
            accounts = accounts.filter(asset__code=asset.upper())
        by_asset: dict[int, set[int]] = {}
        for account_id, asset_id in accounts.values_list("id", "asset_id"):
            by_asset.setdefault(asset_id, set()).add(account_id)
        own = set().union(*by_asset.values())
        if not own:
            return [], None
        entries = (
            Transfer.objects.filter(Q(debit_account_id__in=own) | Q(credit_account_id__in=own))
            .exclude(debit_account_id__in=own, credit_account_id__in=own)
            .select_related("asset")
            .order_by("-id")
        )
        if cursor:
            entries = entries.filter(id__lt=cursor)
        rows = list(entries if limit is None else entries[: limit + 1])
        next_cursor = None
        if limit is not None and len(rows) > limit:
            rows, next_cursor = rows[:limit], rows[limit - 1].pk
        balances = _balances_through(by_asset=by_asset, rows=rows)
    out = []
    for row in rows:
        amount = row.amount if row.credit_account_id in own else -row.amount
        out.append(
            {
                "id": row.pk,
                "at": row.created_at,
                "asset": row.asset.code,
                "kind": row.kind,
                "amount": amount,
                "balance_after": balances[row.asset_id],
                "reference": row.reference,
                "memo": row.memo,
            }
        )
        balances[row.asset_id] -= amount
    return out, next_cursor


def _balances_through(*, by_asset: dict[int, set[int]], rows: list) -> dict[int, Decimal]:
    """Per asset on the page: the user's total just after the page's newest entry of that asset."""
    newest: dict[int, int] = {}
    for row in rows:
        newest.setdefault(row.asset_id, row.pk)
    balances = {}
    for asset_id, through in newest.items():
        # By the user's accounts of the asset, not by asset: their indexes find only this user's rows.
        own = by_asset[asset_id]
        mine = Transfer.objects.filter(id__lte=through)
        credits = mine.filter(credit_account_id__in=own).exclude(debit_account_id__in=own).aggregate(t=Sum("amount"))
        debits = mine.filter(debit_account_id__in=own).exclude(credit_account_id__in=own).aggregate(t=Sum("amount"))
        balances[asset_id] = (credits["t"] or Decimal(0)) - (debits["t"] or Decimal(0))
    return balances


@contextmanager
def consistent_snapshot() -> Iterator[None]:
    """Every read inside sees the database as of one instant, whatever commits meanwhile.

    The connection's own isolation is READ COMMITTED, where each statement sees the latest commits:
    a check made of several queries would compare balances from before a settlement with orders
    from after it. A REPEATABLE READ transaction started WITH CONSISTENT SNAPSHOT reads them all
    as of its start. Reads only; the transaction is rolled back.
    """
    if connection.in_atomic_block:
        # Already inside a transaction (a test's): its isolation was fixed when it began.
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
