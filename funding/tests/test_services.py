import threading
from decimal import Decimal

import pytest
from django.db import connection

from accounts.tests.factories import UserFactory
from audit.models import AuditEntry
from exchange_site.errors import RuleViolation
from funding.models import FundingRequest
from funding.services import (
    deposit_confirm,
    deposit_reject,
    deposit_request,
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_reject,
    withdrawal_request,
)
from funding.tests.factories import operator_create
from ledger.models import Transfer
from ledger.selectors import balance_of

Status = FundingRequest.Status


@pytest.fixture
def operator(db):
    return operator_create()


def balances(user, code="USD"):
    return balance_of(user=user, asset_code=code), balance_of(user=user, asset_code=code, kind="locked")


@pytest.mark.django_db
def test_a_deposit_waits_for_an_operator_then_credits_once(user, usd, operator):
    deposit, created = deposit_request(user=user, asset="usd", amount="250.50")
    assert created and deposit.status == Status.PENDING
    assert balances(user) == (0, 0)
    deposit_confirm(request_id=deposit.pk, operator=operator)
    with pytest.raises(RuleViolation) as again:
        deposit_confirm(request_id=deposit.pk, operator=operator)
    assert again.value.code == "not_pending"
    assert balances(user) == (Decimal("250.50"), 0)
    assert Transfer.objects.get(reference=f"deposit:{deposit.pk}").amount == Decimal("250.50")
    assert list(AuditEntry.objects.values_list("action", "target")) == [("deposit_confirm", f"deposit:{deposit.pk}")]


@pytest.mark.django_db
def test_demo_deposits_complete_at_once_up_to_the_daily_limit(user, usd, btc, settings):
    settings.FUNDING_DEMO_DEPOSIT_LIMIT = "USD=1000,BTC=1"
    first, _ = deposit_request(user=user, asset="USD", amount="600")
    second, _ = deposit_request(user=user, asset="USD", amount="400")
    third, _ = deposit_request(user=user, asset="USD", amount="0.01")
    coin, _ = deposit_request(user=user, asset="BTC", amount="1")
    assert [r.status for r in (first, second, third, coin)] == ["completed", "completed", "pending", "completed"]
    assert balances(user) == (Decimal("1000"), 0)
    assert AuditEntry.objects.count() == 0  # no operator acted


@pytest.mark.django_db
def test_demo_mode_is_off_by_default(user, usd):
    deposit, _ = deposit_request(user=user, asset="USD", amount="1")
    assert deposit.status == Status.PENDING


@pytest.mark.django_db
def test_the_same_client_request_id_creates_one_request(user, usd, settings):
    settings.FUNDING_DEMO_DEPOSIT_LIMIT = "1000"
    first, created = deposit_request(user=user, asset="USD", amount="10", client_request_id="abc")
    again, created_again = deposit_request(user=user, asset="USD", amount="10.00", client_request_id="abc")
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert balances(user) == (Decimal("10"), 0)
    with pytest.raises(RuleViolation) as reused:
        deposit_request(user=user, asset="USD", amount="11", client_request_id="abc")
    assert (reused.value.code, reused.value.status_code) == ("client_request_id_reused", 409)
    # Another user may use the same key.
    other, created_other = deposit_request(user=UserFactory(), asset="USD", amount="10", client_request_id="abc")
    assert created_other and other.pk != first.pk


@pytest.mark.django_db
def test_a_withdrawal_holds_its_amount_and_leaves_when_approved(funded, operator):
    trader = funded(USD="100")
    withdrawal, _ = withdrawal_request(user=trader, asset="USD", amount="40", destination="IBAN DE00 1234")
    assert withdrawal.status == Status.PENDING
    assert balances(trader) == (Decimal("60"), Decimal("40"))
    withdrawal_approve(request_id=withdrawal.pk, operator=operator)
    assert balances(trader) == (Decimal("60"), 0)
    withdrawal.refresh_from_db()
    assert (withdrawal.status, withdrawal.decided_by) == (Status.COMPLETED, operator)
    sent = Transfer.objects.get(reference=f"withdrawal:{withdrawal.pk}:send")
    assert (sent.kind, sent.amount, sent.created_by) == ("withdrawal", Decimal("40"), operator)
    assert AuditEntry.objects.get().action == "withdrawal_approve"


@pytest.mark.django_db
def test_a_withdrawal_above_available_is_refused_and_holds_nothing(funded):
    trader = funded(USD="100")
    withdrawal_request(user=trader, asset="USD", amount="70", destination="x")
    with pytest.raises(RuleViolation) as refused:
        withdrawal_request(user=trader, asset="USD", amount="30.01", destination="x")
    assert refused.value.code == "insufficient_funds"
    assert balances(trader) == (Decimal("30"), Decimal("70"))
    assert FundingRequest.objects.filter(user=trader).count() == 1


@pytest.mark.django_db
def test_a_rejected_withdrawal_releases_exactly_its_hold(funded, operator):
    trader = funded(USD="100")
    kept, _ = withdrawal_request(user=trader, asset="USD", amount="25", destination="a")
    refused, _ = withdrawal_request(user=trader, asset="USD", amount="30", destination="b")
    with pytest.raises(RuleViolation):
        withdrawal_reject(request_id=refused.pk, operator=operator, reason="  ")
    withdrawal_reject(request_id=refused.pk, operator=operator, reason="destination on a sanctions list")
    assert balances(trader) == (Decimal("75"), Decimal("25"))
    refused.refresh_from_db()
    assert (refused.status, refused.reason) == (Status.REJECTED, "destination on a sanctions list")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.reason) == ("withdrawal_reject", "destination on a sanctions list")
    kept.refresh_from_db()
    assert kept.status == Status.PENDING


@pytest.mark.django_db
def test_the_owner_cancels_a_pending_withdrawal_and_nobody_else_can(funded, operator):
    trader = funded(USD="100")
    withdrawal, _ = withdrawal_request(user=trader, asset="USD", amount="10", destination="a")
    with pytest.raises(RuleViolation) as not_yours:
        withdrawal_cancel(user=UserFactory(), request_id=withdrawal.pk)
    assert not_yours.value.status_code == 404
    withdrawal_cancel(user=trader, request_id=withdrawal.pk)
    assert balances(trader) == (Decimal("100"), 0)
    with pytest.raises(RuleViolation) as decided:
        withdrawal_approve(request_id=withdrawal.pk, operator=operator)
    assert decided.value.code == "not_pending"
    assert balances(trader) == (Decimal("100"), 0)


@pytest.mark.django_db
def test_a_rejected_deposit_credits_nothing(user, usd, operator):
    deposit, _ = deposit_request(user=user, asset="USD", amount="5")
    deposit_reject(request_id=deposit.pk, operator=operator, reason="no wire received")
    assert balances(user) == (0, 0) and not Transfer.objects.exists()
    assert AuditEntry.objects.get().action == "deposit_reject"


@pytest.mark.django_db
def test_staff_without_the_permission_cannot_decide(funded):
    trader = funded(USD="10")
    withdrawal, _ = withdrawal_request(user=trader, asset="USD", amount="10", destination="a")
    with pytest.raises(RuleViolation) as denied:
        withdrawal_approve(request_id=withdrawal.pk, operator=UserFactory(is_staff=True))
    assert denied.value.status_code == 403
    assert balances(trader) == (0, Decimal("10"))


@pytest.mark.parametrize("amount", ["-1", "0", "1e3", "abc", "0.000000001", "NaN"])
@pytest.mark.django_db
def test_bad_amounts_are_refused(funded, amount):
    trader = funded(USD="10")
    with pytest.raises(RuleViolation):
        withdrawal_request(user=trader, asset="USD", amount=amount, destination="a")
    assert balances(trader) == (Decimal("10"), 0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_approve_and_reject_settle_exactly_once(funded, operator):
    """Two operators act on one withdrawal at the same moment, each on its own connection."""
    trader = funded(USD="100")
    withdrawal, _ = withdrawal_request(user=trader, asset="USD", amount="60", destination="a")
    start = threading.Barrier(2)
    outcomes = []

    def act(decide):
        try:
            start.wait()
            decide()
            outcomes.append("done")
        except RuleViolation as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=act, args=(lambda: withdrawal_approve(request_id=withdrawal.pk, operator=operator),)),
        threading.Thread(
            target=act,
            args=(lambda: withdrawal_reject(request_id=withdrawal.pk, operator=operator, reason="dup"),),
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["done", "not_pending"]
    withdrawal.refresh_from_db()
    available, locked = balances(trader)
    if withdrawal.status == Status.COMPLETED:
        assert (available, locked) == (Decimal("40"), 0)
    else:
        assert (withdrawal.status, available, locked) == (Status.REJECTED, Decimal("100"), 0)
    assert AuditEntry.objects.count() == 1
    assert Transfer.objects.filter(reference__startswith=f"withdrawal:{withdrawal.pk}:").count() == 2
