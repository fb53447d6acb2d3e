"""Signed requests through a real daphne: the path signed is the raw path and query the client sent."""

import json
import time
import urllib.error
import urllib.request

import pytest

from accounts.services import api_key_create, signature_of
from orders.models import Order
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def signed(url: str, path: str, *, key_id: str, secret: str, method: str = "GET", body: bytes = b""):
    stamp = str(int(time.time() * 1000))
    headers = {
        "X-API-Key": key_id,
        "X-API-Timestamp": stamp,
        "X-API-Signature": signature_of(secret=secret, timestamp=stamp, method=method, path=path, body=body),
        "Content-Type": "application/json",
    }
    request = urllib.request.Request(url + path, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_signed_requests_through_daphne(live_server_url, funded):
    MarketFactory(symbol="BTC-USD")
    trader = funded(USD="1000")
    api_key, secret = api_key_create(user=trader)
    body = json.dumps({"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.5"}).encode()
    status, order = signed(
        live_server_url, "/api/v1/orders", key_id=api_key.key_id, secret=secret, method="POST", body=body
    )
    assert status == 201 and Order.objects.get(user=trader).id == order["id"]
    # A query with escapes: signed exactly as sent.
    path = "/api/v1/orders?symbol=BTC%2DUSD&status=open"
    status, orders = signed(live_server_url, path, key_id=api_key.key_id, secret=secret)
    assert status == 200 and [o["id"] for o in orders] == [order["id"]]
    status, refused = signed(live_server_url, path, key_id=api_key.key_id, secret="wrong")
    assert status == 401 and refused["error"]["code"] == "bad_signature"
