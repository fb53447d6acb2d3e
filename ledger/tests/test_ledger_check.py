from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from ledger.models import LedgerAccount

pytestmark = pytest.mark.django_db


def test_ledger_check_passes_after_seed_demo(capsys):
    call_command("seed_demo")
    call_command("ledger_check")
    assert "OK" in capsys.readouterr().out


def test_ledger_check_fails_when_a_balance_is_corrupted_by_raw_sql(capsys):
    call_command("seed_demo")
    account = LedgerAccount.objects.get(key__endswith=":BTC:available", user__username="alice")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {LedgerAccount._meta.db_table} SET balance = balance + 1 WHERE id = %s", [account.id])
    with pytest.raises(CommandError) as caught:
        call_command("ledger_check")
    assert caught.value.returncode == 1
    report = capsys.readouterr().err
    assert f"account {account.key}" in report
    assert "balances sum to 1" in report
    # Put it back so the suite's own invariant check after this test sees a sound ledger.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {LedgerAccount._meta.db_table} SET balance = balance - 1 WHERE id = %s", [account.id])


def test_ledger_check_reports_a_negative_available_balance(capsys, user, usd):
    from ledger.services import funds_deposit

    funds_deposit(user=user, asset=usd, amount="1")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {LedgerAccount._meta.db_table} SET balance = -1 WHERE `key` = %s",
            [f"user:{user.pk}:USD:available"],
        )
    with pytest.raises(CommandError):
        call_command("ledger_check")
    assert "negative balance -1" in capsys.readouterr().err
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {LedgerAccount._meta.db_table} SET balance = 1 WHERE `key` = %s", [f"user:{user.pk}:USD:available"]
        )


def test_ledger_check_reports_money_left_in_a_clearing_account(capsys, user, usd):
    from ledger.models import Transfer
    from ledger.services import Posting, accounts_get_or_create, funds_deposit, transfers_post

    funds_deposit(user=user, asset=usd, amount="5")
    ids = accounts_get_or_create(specs=[(user.pk, usd, "available"), (None, usd, LedgerAccount.Kind.CLEARING)])
    # A settlement that put money into clearing and never took it out: every sum still balances.
    transfers_post(
        postings=[
            Posting(
                debit_id=ids[(user.pk, usd.pk, "available")],
                credit_id=ids[(None, usd.pk, LedgerAccount.Kind.CLEARING)],
                asset_id=usd.pk,
                amount=Decimal("2"),
                kind=Transfer.Kind.TRADE,
                reference="test:stuck-in-clearing",
            )
        ]
    )
    with pytest.raises(CommandError):
        call_command("ledger_check")
    assert "account system:USD:clearing: a clearing account holds 2" in capsys.readouterr().err
    transfers_post(
        postings=[
            Posting(
                debit_id=ids[(None, usd.pk, LedgerAccount.Kind.CLEARING)],
                credit_id=ids[(user.pk, usd.pk, "available")],
                asset_id=usd.pk,
                amount=Decimal("2"),
                kind=Transfer.Kind.TRADE,
                reference="test:stuck-in-clearing:undo",
            )
        ]
    )
    call_command("ledger_check")
