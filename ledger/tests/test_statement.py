import csv
import io
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from funding.services import withdrawal_approve, withdrawal_request
from funding.tests.factories import operator_create
from ledger.selectors import statement_for_user
from ledger.services import asset_get_or_create, funds_deposit, funds_hold, funds_release, funds_withdraw

pytestmark = pytest.mark.django_db


def test_the_statement_lists_what_changed_the_total_with_a_running_balance(user, usd, btc):
    funds_deposit(user=user, asset=usd, amount="100", reference="wire:1")
    funds_hold(user=user, asset=usd, amount="40")  # available -> locked: the total is unchanged
    funds_release(user=user, asset=usd, amount="40")
    funds_deposit(user=user, asset=btc, amount="2")
    funds_withdraw(user=user, asset=usd, amount="30")
    withdrawal, _ = withdrawal_request(user=user, asset="USD", amount="20", destination="x")
    withdrawal_approve(request_id=withdrawal.pk, operator=operator_create())
    entries, next_cursor = statement_for_user(user=user)
    assert next_cursor is None
    assert [(e["asset"], e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("USD", "withdrawal", Decimal("-20"), Decimal("50")),
        ("USD", "withdrawal", Decimal("-30"), Decimal("70")),
        ("BTC", "deposit", Decimal("2"), Decimal("2")),
        ("USD", "deposit", Decimal("100"), Decimal("100")),
    ]
    assert entries[-1]["reference"] == "wire:1"


def test_pages_carry_the_running_balance_over(user, usd):
    for amount in ("1", "2", "3", "4", "5"):
        funds_deposit(user=user, asset=usd, amount=amount)
    first, cursor = statement_for_user(user=user, asset="usd", limit=2)
    second, cursor2 = statement_for_user(user=user, asset="usd", limit=2, cursor=cursor)
    third, cursor3 = statement_for_user(user=user, asset="usd", limit=2, cursor=cursor2)
    balances = [e["balance_after"] for e in first + second + third]
    assert balances == [Decimal(n) for n in ("15", "10", "6", "3", "1")]
    assert cursor3 is None


def test_statement_api_json_csv_and_scope(user, usd, funded):
    funds_deposit(user=user, asset=usd, amount="12.5", memo="=cmd|x")
    funded(USD="999")  # someone else's money is not on the statement
    client = APIClient()
    client.force_authenticate(user)
    body = client.get("/api/v1/statement").json()
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in body] == [("deposit", "12.5", "12.5")]
    assert set(body[0]) == {"id", "at", "asset", "kind", "amount", "balance_after", "reference", "memo"}
    download = client.get("/api/v1/statement", {"format": "csv", "asset": "USD"})
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert 'filename="statement-USD.csv"' in download["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert [(r["amount"], r["balance_after"]) for r in rows] == [("12.5", "12.5")]
    assert not rows[0]["memo"].startswith("=")  # a spreadsheet must not run it as a formula
    assert client.get("/api/v1/statement", {"cursor": "x"}).status_code == 400
    assert client.get("/api/v1/statement", {"asset": "NOPE"}).json() == []


def test_statement_page_filters_and_links_the_csv(client, user, usd):
    asset_get_or_create(code="BTC")
    funds_deposit(user=user, asset=usd, amount="7")
    client.force_login(user)
    page = client.get("/funding/statement/", {"asset": "USD"}).content.decode()
    assert "deposit" in page and "?format=csv&asset=USD" in page
    assert client.get("/funding/statement/", {"format": "csv"}).content.decode().count("\n") == 2
