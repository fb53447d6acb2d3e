from decimal import Decimal

import pytest

from funding.models import FundingRequest
from ledger.selectors import balance_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, funded):
    trader = funded(USD="100")
    client.force_login(trader)
    return trader


def test_signed_out_users_are_sent_to_log_in(client):
    assert client.get("/funding/").status_code == 302
    assert client.get("/funding/statement/").status_code == 302


def test_a_double_submitted_withdrawal_form_holds_once(client, signed_in):
    page = client.get("/funding/")
    key = page.context["withdrawal_form"]["client_request_id"].value()
    fields = {
        "withdraw-asset": "USD",
        "withdraw-amount": "40",
        "withdraw-destination": "acct",
        "withdraw-client_request_id": key,
    }
    assert client.post("/funding/", fields).status_code == 302
    assert client.post("/funding/", fields).status_code == 302  # the second click shows the same request
    assert FundingRequest.objects.count() == 1
    assert balance_of(user=signed_in, asset_code="USD", kind="locked") == Decimal("40")


def test_errors_show_on_the_form_and_change_nothing(client, signed_in):
    response = client.post(
        "/funding/",
        {
            "withdraw-asset": "USD",
            "withdraw-amount": "100.5",
            "withdraw-destination": "acct",
            "withdraw-client_request_id": "k",
        },
    )
    assert response.status_code == 400 and b"Insufficient USD" in response.content
    response = client.post(
        "/funding/", {"deposit-asset": "USD", "deposit-amount": "-3", "deposit-client_request_id": "d"}
    )
    assert response.status_code == 400 and b"greater than zero" in response.content
    assert not FundingRequest.objects.exists()


def test_the_owner_cancels_from_the_page(client, signed_in):
    client.post(
        "/funding/",
        {
            "withdraw-asset": "USD",
            "withdraw-amount": "10",
            "withdraw-destination": "a",
            "withdraw-client_request_id": "c",
        },
    )
    withdrawal = FundingRequest.objects.get()
    assert f'data-testid="cancel-withdrawal-{withdrawal.pk}"' in client.get("/funding/").content.decode()
    client.post(f"/funding/withdrawals/{withdrawal.pk}/cancel/")
    withdrawal.refresh_from_db()
    assert withdrawal.status == "canceled"
    assert balance_of(user=signed_in, asset_code="USD") == Decimal("100")
