"""Signed requests with API key pairs: accepted when right, refused with a distinct code otherwise."""

import json
import re
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from accounts.tests.factories import signed_headers
from audit.models import AuditEntry
from ledger.selectors import balance_of
from orders.models import Order
from orders.tests.factories import MarketFactory

pytestmark = pytest.mark.django_db

ORDER = {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.5"}


@pytest.fixture
def market(usd, btc):
    return MarketFactory(symbol="BTC-USD")


@pytest.fixture
def trader(funded):
    return funded(USD="1000")


def send(method, path, *, key_id, secret, body=None, timestamp=None, signature=None):
    raw = json.dumps(body).encode() if body is not None else b""
    headers = signed_headers(key_id=key_id, secret=secret, method=method, path=path, body=raw, timestamp=timestamp)
    if signature is not None:
        headers["HTTP_X_API_SIGNATURE"] = signature
    client = Client()
    kwargs = {"data": raw, "content_type": "application/json"} if raw else {}
    return getattr(client, method.lower())(path, **kwargs, **headers), headers


def nothing_held(user):
    return not Order.objects.filter(user=user).exists() and balance_of(user=user, asset_code="USD") == Decimal("1000")


def test_a_signed_order_is_accepted_and_held(market, trader):
    api_key, secret = api_key_create(user=trader, scopes="read,trade")
    response, _ = send("POST", "/api/v1/orders", key_id=api_key.key_id, secret=secret, body=ORDER)
    assert response.status_code == 201, response.content
    order = Order.objects.get(user=trader)
    assert response.json()["id"] == order.id and order.status == Order.Status.PENDING
    assert balance_of(user=trader, asset_code="USD") == Decimal("950")
    # A signed GET with a query string: the path signed is the path with its query.
    response, _ = send("GET", "/api/v1/orders?symbol=BTC-USD&status=all", key_id=api_key.key_id, secret=secret)
    assert response.status_code == 200 and [o["id"] for o in response.json()] == [order.id]
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def refusal(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_each_refusal_has_its_code_and_changes_nothing(market, trader):
    api_key, secret = api_key_create(user=trader, scopes="read,trade")
    key_id = api_key.key_id

    response, _ = send("POST", "/api/v1/orders", key_id="0" * 24, secret=secret, body=ORDER)
    assert refusal(response) == (401, "unknown_api_key")

    response, _ = send("POST", "/api/v1/orders", key_id=key_id, secret="not-the-secret", body=ORDER)
    assert refusal(response) == (401, "bad_signature")

    # Signed for another body than the one sent.
    raw = json.dumps({**ORDER, "quantity": "5"}).encode()
    headers = signed_headers(key_id=key_id, secret=secret, method="POST", path="/api/v1/orders", body=raw)
    tampered = Client().post("/api/v1/orders", json.dumps(ORDER), content_type="application/json", **headers)
    assert refusal(tampered) == (401, "bad_signature")

    for skew_ms in (6000, -6000):
        stale = int(time.time() * 1000) + skew_ms
        response, _ = send("POST", "/api/v1/orders", key_id=key_id, secret=secret, body=ORDER, timestamp=stale)
        assert refusal(response) == (401, "stale_timestamp")

    assert nothing_held(trader)

    # The same signed request twice: the second is a replay.
    first, headers = send("POST", "/api/v1/orders", key_id=key_id, secret=secret, body=ORDER)
    assert first.status_code == 201
    again = Client().post("/api/v1/orders", json.dumps(ORDER), content_type="application/json", **headers)
    assert refusal(again) == (401, "replayed_request")
    assert Order.objects.filter(user=trader).count() == 1

    api_key_revoke(user=trader, api_key_id=api_key.id)
    response, _ = send("POST", "/api/v1/orders", key_id=key_id, secret=secret, body=ORDER)
    assert refusal(response) == (401, "revoked_api_key")
    assert Order.objects.filter(user=trader).count() == 1
    assert balance_of(user=trader, asset_code="USD") == Decimal("950")


def test_a_read_key_reads_but_cannot_place_or_cancel(market, trader):
    from accounts.services import token_create

    api_key, secret = api_key_create(user=trader, scopes="read")
    response, _ = send("GET", "/api/v1/balances", key_id=api_key.key_id, secret=secret)
    assert response.status_code == 200
    response, _ = send("POST", "/api/v1/orders", key_id=api_key.key_id, secret=secret, body=ORDER)
    assert refusal(response) == (403, "insufficient_scope")
    assert nothing_held(trader)

    # Token auth keeps every right: it places; the read key still cannot cancel it.
    token = token_create(user=trader)[1]
    placed = Client().post(
        "/api/v1/orders", ORDER, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
    )
    assert placed.status_code == 201
    order_id = placed.json()["id"]
    response, _ = send("DELETE", f"/api/v1/orders/{order_id}", key_id=api_key.key_id, secret=secret)
    assert refusal(response) == (403, "insufficient_scope")
    assert Order.objects.get(pk=order_id).cancel_requested_at is None


def test_incomplete_signature_headers_are_refused(market, trader):
    api_key, _ = api_key_create(user=trader)
    response = Client().get("/api/v1/balances", HTTP_X_API_KEY=api_key.key_id)
    assert refusal(response) == (401, "signature_required")
    response = Client().get(
        "/api/v1/balances", HTTP_X_API_KEY=api_key.key_id, HTTP_X_API_TIMESTAMP="soon", HTTP_X_API_SIGNATURE="ab"
    )
    assert refusal(response) == (401, "invalid_timestamp")


def test_createapikey_prints_a_working_pair_on_the_last_line(capsys, market, trader):
    call_command("createapikey", trader.username, "--scopes", "read", "--name", "reporting")
    out, err = capsys.readouterr()
    key_id, secret = out.strip().splitlines()[-1].split(" ")
    api_key = ApiKey.objects.get(key_id=key_id)
    assert api_key.scopes == "read" and api_key.name == "reporting"
    # Stored encrypted: neither the row nor the command's other output holds the secret in clear.
    assert secret not in api_key.secret_encrypted and secret not in err
    response, _ = send("GET", "/api/v1/balances", key_id=key_id, secret=secret)
    assert response.status_code == 200
    call_command("createapikey", trader.username)
    assert ApiKey.objects.filter(user=trader).first().scopes == "read,trade"


def test_createapikey_refuses_unknown_scopes_and_users(trader):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("createapikey", trader.username, "--scopes", "read,withdraw")
    with pytest.raises(CommandError, match="Unknown user"):
        call_command("createapikey", "nobody")
    assert not ApiKey.objects.exists()


def test_profile_creates_a_pair_shows_the_secret_once_and_revokes_it(client, market, trader):
    client.force_login(trader)
    page = client.post("/accounts/profile/api-keys/", {"name": "bot", "trade": "on"}).content.decode()
    key_id = re.search(r'data-testid="new-api-key-id">([0-9a-f]+)<', page).group(1)
    secret = re.search(r'data-testid="new-api-secret">([0-9a-f]+)<', page).group(1)
    assert ApiKey.objects.get(key_id=key_id).scopes == "read,trade"
    later = client.get("/accounts/profile/").content.decode()
    assert key_id in later and secret not in later
    response, _ = send("POST", "/api/v1/orders", key_id=key_id, secret=secret, body=ORDER)
    assert response.status_code == 201

    client.post(f"/accounts/profile/api-keys/{ApiKey.objects.get(key_id=key_id).id}/revoke/")
    response, _ = send("GET", "/api/v1/balances", key_id=key_id, secret=secret)
    assert refusal(response) == (401, "revoked_api_key")


def test_a_user_cannot_revoke_another_users_key(client, trader, user):
    api_key, _ = api_key_create(user=user)
    client.force_login(trader)
    client.post(f"/accounts/profile/api-keys/{api_key.id}/revoke/")
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_an_operator_revokes_keys_and_tokens_in_the_admin_and_it_is_audited(client, trader):
    from django.contrib.auth import get_user_model

    from accounts.models import ApiToken
    from accounts.services import token_create
    from funding.tests.factories import otp_login

    operator = get_user_model().objects.create_superuser("ops", "ops@example.com", "ops-pass-123")
    otp_login(client, operator)
    api_key, secret = api_key_create(user=trader)
    token, _ = token_create(user=trader)
    page = client.get(f"/admin/accounts/apikey/{api_key.id}/change/").content.decode()
    assert api_key.key_id in page and api_key.secret_encrypted not in page and secret not in page

    client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [api_key.id]})
    client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.id]})
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None and ApiToken.objects.get(pk=token.pk).revoked_at is not None
    entries = {(entry.actor, entry.action) for entry in AuditEntry.objects.all()}
    assert entries == {(operator, "api_key.revoke"), (operator, "api_token.revoke")}
    assert api_key.key_id in AuditEntry.objects.get(action="api_key.revoke").target


def test_no_secret_reaches_the_logs(caplog, market, trader):
    api_key, secret = api_key_create(user=trader)
    with caplog.at_level("DEBUG"):
        send("POST", "/api/v1/orders", key_id=api_key.key_id, secret="wrong", body=ORDER)
        send("POST", "/api/v1/orders", key_id=api_key.key_id, secret=secret, body=ORDER)
    assert secret not in caplog.text
