from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from funding.tests.factories import otp_login
from ledger.models import Transfer
from ledger.selectors import balance_of
from ledger.services import funds_deposit

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "ops-pass-123")
    otp_login(client, staff)
    return staff


def test_operator_sees_balances_inline(client, operator, user, usd):
    funds_deposit(user=user, asset=usd, amount="77.25")
    page = client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert "Balances" in page and "77.25" in page


def test_operator_adjusts_a_balance_with_a_reason(client, operator, user, usd):
    url = f"/admin/auth/user/{user.pk}/adjust-balance/"
    response = client.post(url, {"asset": usd.pk, "direction": "credit", "amount": "5", "reason": ""})
    assert response.status_code == 200 and Transfer.objects.count() == 0
    response = client.post(url, {"asset": usd.pk, "direction": "credit", "amount": "5", "reason": "refund #12"})
    assert response.status_code == 302
    transfer = Transfer.objects.get()
    assert transfer.created_by == operator and "refund #12" in transfer.memo
    response = client.post(url, {"asset": usd.pk, "direction": "debit", "amount": "6", "reason": "too much"})
    assert b"Insufficient USD" in response.content
    assert balance_of(user=user, asset_code="USD") == Decimal("5")


def test_transfers_are_read_only_and_searchable_in_admin(client, operator, user, usd):
    funds_deposit(user=user, asset=usd, amount="1", reference="wire:abc")
    transfer = Transfer.objects.get()
    listing = client.get("/admin/ledger/transfer/", {"q": "wire:abc", "kind__exact": "deposit"}).content.decode()
    assert "wire:abc" in listing
    client.post(f"/admin/ledger/transfer/{transfer.pk}/change/", {"amount": "1000"})
    assert client.post(f"/admin/ledger/transfer/{transfer.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Transfer.objects.get().amount == Decimal("1")
