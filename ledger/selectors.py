from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django.db.models import Sum

from .models import Asset, LedgerAccount, Transfer


def balances_for_user(*, user) -> list[dict]:
    """[{asset, available, locked}] for every asset, zero where the user has nothing."""
    rows = LedgerAccount.objects.filter(user=user).values_list("asset__code", "kind", "balance")
    held = {(code, kind): balance for code, kind, balance in rows}
    return [
        {
            "asset": asset.code,
            "available": held.get((asset.code, LedgerAccount.Kind.AVAILABLE), Decimal(0)),
            "locked": held.get((asset.code, LedgerAccount.Kind.LOCKED), Decimal(0)),
        }
        for asset in Asset.objects.order_by("code")
    ]


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
    for key, balance in LedgerAccount.objects.filter(kind__in=LedgerAccount.USER_KINDS, balance__lt=0).values_list(
        "key", "balance"
    ):
        problems.append(f"account {key}: negative balance {balance}")
    return problems
