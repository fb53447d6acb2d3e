from decimal import Decimal

import pytest
from django.db import transaction

from exchange_site.errors import RuleViolation
from ledger.models import ImmutableError, LedgerAccount, Transfer
from ledger.selectors import balance_of, balances_for_user
from ledger.services import (
    FundsMoved,
    InsufficientFunds,
    asset_get,
    balance_adjust,
    funds_deposit,
    funds_hold,
    funds_release,
    funds_settle,
    funds_withdraw,
    hold_accounts_read,
    holds_post,
)

pytestmark = [pytest.mark.django_db, pytest.mark.bare_holds]


def balances(user):
    return {row["asset"]: (row["available"], row["locked"]) for row in balances_for_user(user=user)}


def test_deposit_then_withdraw_moves_exact_amounts(user, usd):
    funds_deposit(user=user, asset=usd, amount="100.10")
    funds_withdraw(user=user, asset=usd, amount="0.1")
    assert balances(user)["USD"] == (Decimal("100.00"), Decimal(0))
    external = LedgerAccount.objects.get(key="system:USD:external")
    assert external.balance == Decimal("-100.00")


def test_hold_and_release_move_between_available_and_locked(user, usd):
    funds_deposit(user=user, asset=usd, amount="50")
    funds_hold(user=user, asset=usd, amount="20.5")
    assert balances(user)["USD"] == (Decimal("29.5"), Decimal("20.5"))
    funds_release(user=user, asset=usd, amount="0.5")
    assert balances(user)["USD"] == (Decimal("30"), Decimal("20"))


def test_settle_pays_counterparty_and_fee_account(funded, btc):
    seller = funded(BTC="1")
    buyer = funded()
    funds_hold(user=seller, asset=btc, amount="0.5")
    funds_settle(payer=seller, payee=buyer, asset=btc, amount="0.5", fee="0.001", reference="t1")
    assert balances(seller)["BTC"] == (Decimal("0.5"), Decimal(0))
    assert balances(buyer)["BTC"] == (Decimal("0.499"), Decimal(0))
    assert LedgerAccount.objects.get(key="system:BTC:fees").balance == Decimal("0.001")


@pytest.mark.parametrize("operation", [funds_withdraw, funds_hold])
def test_beyond_available_is_refused_and_changes_nothing(user, usd, operation):
    funds_deposit(user=user, asset=usd, amount="10")
    transfers_before = Transfer.objects.count()
    with pytest.raises(InsufficientFunds) as caught:
        operation(user=user, asset=usd, amount="10.00000001")
    assert caught.value.code == "insufficient_funds"
    assert Transfer.objects.count() == transfers_before
    assert balances(user)["USD"] == (Decimal("10"), Decimal(0))


def test_release_beyond_locked_is_refused(user, usd):
    funds_deposit(user=user, asset=usd, amount="10")
    funds_hold(user=user, asset=usd, amount="3")
    with pytest.raises(InsufficientFunds):
        funds_release(user=user, asset=usd, amount="4")
    assert balances(user)["USD"] == (Decimal("7"), Decimal("3"))


@pytest.mark.parametrize("amount", ["0", "-5", "0.000000001", "abc", "NaN", "Infinity", "", 1.5, "1e30"])
def test_bad_amounts_are_refused_and_write_nothing(user, usd, amount):
    with pytest.raises(RuleViolation) as caught:
        funds_deposit(user=user, asset=usd, amount=amount)
    assert caught.value.code == "invalid_amount"
    assert Transfer.objects.count() == 0


def test_amount_precision_follows_the_asset(user, usd):
    usd.precision = 2
    usd.save()
    with pytest.raises(RuleViolation):
        funds_deposit(user=user, asset=usd, amount="1.001")
    funds_deposit(user=user, asset=usd, amount="1.010")  # trailing zero is still two places
    assert balance_of(user=user, asset_code="USD") == Decimal("1.01")


def test_unknown_asset_is_refused(db):
    with pytest.raises(RuleViolation) as caught:
        asset_get(code="DOGE")
    assert caught.value.code == "unknown_asset"


def test_the_same_reference_never_posts_twice(user, usd):
    funds_deposit(user=user, asset=usd, amount="5", reference="bank:42")
    with pytest.raises(RuleViolation) as caught:
        funds_deposit(user=user, asset=usd, amount="5", reference="bank:42")
    assert caught.value.code == "duplicate_reference"
    assert balance_of(user=user, asset_code="USD") == Decimal("5")


def test_transfers_cannot_be_updated_or_deleted(user, usd):
    funds_deposit(user=user, asset=usd, amount="5")
    transfer = Transfer.objects.get()
    transfer.amount = Decimal("500")
    with pytest.raises(ImmutableError):
        transfer.save()
    with pytest.raises(ImmutableError):
        transfer.delete()
    with pytest.raises(ImmutableError):
        Transfer.objects.filter(pk=transfer.pk).update(amount=1)
    with pytest.raises(ImmutableError):
        Transfer.objects.all().delete()
    assert Transfer.objects.get().amount == Decimal("5")


def test_adjustment_records_operator_and_requires_reason(user, usd):
    operator = type(user).objects.create_user("ops", password="x-long-password-1", is_staff=True)
    with pytest.raises(RuleViolation) as caught:
        balance_adjust(user=user, asset=usd, amount="3", direction="credit", reason="  ", operator=operator)
    assert caught.value.code == "reason_required"
    assert Transfer.objects.count() == 0
    balance_adjust(user=user, asset=usd, amount="3", direction="credit", reason="goodwill ticket 7", operator=operator)
    transfer = Transfer.objects.get()
    assert transfer.kind == Transfer.Kind.ADJUSTMENT
    assert transfer.created_by == operator
    assert "goodwill ticket 7" in transfer.memo
    assert balance_of(user=user, asset_code="USD") == Decimal("3")


def test_a_hold_on_balances_read_before_they_moved_is_refused_and_writes_nothing(user, usd):
    funds_deposit(user=user, asset=usd, amount="100")
    stale = hold_accounts_read(wanted=[(user.pk, usd)], lock=False)  # sees 100 available
    with transaction.atomic():  # meanwhile another hold takes 70
        fresh = hold_accounts_read(wanted=[(user.pk, usd)], lock=True)
        holds_post(accounts=fresh, holds=[((user.pk, usd.id), Decimal(70), "hold:first")])
    with pytest.raises(FundsMoved), transaction.atomic():
        holds_post(accounts=stale, holds=[((user.pk, usd.id), Decimal(50), "hold:stale")])
    assert balances(user)["USD"] == (Decimal(30), Decimal(70))
    assert not Transfer.objects.filter(reference="hold:stale").exists()

    # What still fits is held from the same stale read: the guard is on the balance, not the read.
    with transaction.atomic():
        holds_post(accounts=stale, holds=[((user.pk, usd.id), Decimal(30), "hold:rest")])
    assert balances(user)["USD"] == (Decimal(0), Decimal(100))
