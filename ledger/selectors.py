from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.db import connection
from django.db.models import Sum

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
