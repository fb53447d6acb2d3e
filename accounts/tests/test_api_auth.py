from decimal import Decimal

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.services import token_create, token_revoke
from ledger.services import funds_deposit

pytestmark = pytest.mark.django_db


def client_with(key=None):
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_balances_with_a_token(user, usd, btc):
    funds_deposit(user=user, asset=usd, amount="12.5")
    _, key = token_create(user=user)
    response = client_with(key).get("/api/v1/balances")
    assert response.status_code == 200
    assert response.json() == [
        {"asset": "BTC", "available": "0", "locked": "0"},
        {"asset": "USD", "available": "12.5", "locked": "0"},
    ]


@pytest.mark.parametrize("header", [None, "Token nope", "Token a b", "Bearer x"])
def test_balances_refuse_without_a_valid_token(header, db):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/balances")
    assert response.status_code in (401, 403)
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_a_revoked_token_stops_working(user):
    token, key = token_create(user=user)
    assert client_with(key).get("/api/v1/balances").status_code == 200
    token_revoke(user=user, token_id=token.id)
    response = client_with(key).get("/api/v1/balances")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_createtrader_prints_a_working_token_on_the_last_line(capsys, usd):
    call_command("createtrader", "carol", "--deposit", "USD=250.75")
    key = capsys.readouterr().out.strip().splitlines()[-1]
    balances = client_with(key).get("/api/v1/balances").json()
    assert {"asset": "USD", "available": "250.75", "locked": "0"} in balances


def test_createtrader_refuses_bad_deposits_and_creates_nothing(usd):
    from django.contrib.auth import get_user_model
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="greater than zero"):
        call_command("createtrader", "dave", "--deposit", "USD=-1")
    with pytest.raises(CommandError, match="Unknown asset"):
        call_command("createtrader", "dave", "--deposit", "XYZ=1")
    assert not get_user_model().objects.filter(username="dave").exists()


def test_deposit_and_withdraw_commands(capsys, user, usd):
    from django.core.management.base import CommandError

    call_command("deposit", user.username, "USD", "10")
    call_command("withdraw", user.username, "usd", "4.5")
    assert "available now 5.5" in capsys.readouterr().out
    with pytest.raises(CommandError, match="Insufficient USD"):
        call_command("withdraw", user.username, "USD", "6")
    with pytest.raises(CommandError, match="Unknown user"):
        call_command("deposit", "nobody", "USD", "1")
    with pytest.raises(CommandError, match="decimal places"):
        call_command("deposit", user.username, "USD", "0.000000001")
    from ledger.selectors import balance_of

    assert balance_of(user=user, asset_code="USD") == Decimal("5.5")
