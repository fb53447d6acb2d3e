from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from funding.models import FundingRequest
from ledger.selectors import balance_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(funded):
    trader = funded(USD="100")
    client = APIClient()
    client.force_authenticate(trader)
    client.trader = trader
    return client


def usd_balance(api):
    return next(row for row in api.get("/api/v1/balances").json() if row["asset"] == "USD")


def test_deposit_request_and_list(api, settings):
    settings.FUNDING_DEMO_DEPOSIT_LIMIT = "USD=50"
    created = api.post("/api/v1/deposits", {"asset": "USD", "amount": "50", "client_request_id": "d1"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert (body["asset"], body["amount"], body["status"], body["client_request_id"]) == (
        "USD",
        "50",
        "completed",
        "d1",
    )
    replay = api.post("/api/v1/deposits", {"asset": "USD", "amount": "50", "client_request_id": "d1"}, format="json")
    assert (replay.status_code, replay.json()["id"]) == (200, body["id"])
    over = api.post("/api/v1/deposits", {"asset": "USD", "amount": "1"}, format="json").json()
    assert over["status"] == "pending"
    listing = api.get("/api/v1/deposits").json()
    assert [d["id"] for d in listing] == [over["id"], body["id"]]
    assert balance_of(user=api.trader, asset_code="USD") == Decimal("150")


def test_withdrawal_request_cancel_and_errors(api):
    refused = api.post("/api/v1/withdrawals", {"asset": "USD", "amount": "100.01", "destination": "x"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "insufficient_funds"
    missing = api.post("/api/v1/withdrawals", {"asset": "USD", "amount": "1"}, format="json")
    assert missing.status_code == 400 and "destination" in missing.json()["error"]["fields"]
    floaty = api.post("/api/v1/withdrawals", {"asset": "USD", "amount": 1.5, "destination": "x"}, format="json")
    assert floaty.status_code == 400
    unknown = api.post("/api/v1/withdrawals", {"asset": "DOGE", "amount": "1", "destination": "x"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_asset"
    not_object = api.post("/api/v1/withdrawals", ["x"], format="json")
    assert not_object.status_code == 400
    made = api.post("/api/v1/withdrawals", {"asset": "USD", "amount": "30", "destination": "bc1q..."}, format="json")
    assert made.status_code == 201 and made.json()["status"] == "pending"
    withdrawal_id = made.json()["id"]
    assert usd_balance(api) == {"asset": "USD", "available": "70", "locked": "30"}
    # Another user's withdrawal is a 404.
    other = APIClient()
    other.force_authenticate(UserFactory())
    assert other.delete(f"/api/v1/withdrawals/{withdrawal_id}").status_code == 404
    assert other.get(f"/api/v1/withdrawals/{withdrawal_id}").status_code == 404
    canceled = api.delete(f"/api/v1/withdrawals/{withdrawal_id}")
    assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
    again = api.delete(f"/api/v1/withdrawals/{withdrawal_id}")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_pending")
    assert usd_balance(api) == {"asset": "USD", "available": "100", "locked": "0"}
    assert FundingRequest.objects.get().status == "canceled"


def test_lists_are_paginated_with_a_cursor(api):
    for n in range(3):
        api.post("/api/v1/withdrawals", {"asset": "USD", "amount": "1", "destination": f"d{n}"}, format="json")
    first = api.get("/api/v1/withdrawals", {"limit": 2})
    assert len(first.json()) == 2 and first["X-Next-Cursor"]
    rest = api.get("/api/v1/withdrawals", {"limit": 2, "cursor": first["X-Next-Cursor"]})
    assert [w["destination"] for w in rest.json()] == ["d0"] and "X-Next-Cursor" not in rest


def test_signed_out_is_refused():
    assert APIClient().get("/api/v1/deposits").status_code in (401, 403)
