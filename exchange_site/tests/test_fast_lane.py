"""The API's fast lane answers exactly what Django answers, and hands Django everything else.

Two real daphne processes on one database: one with the fast lane (the default) and one with
``API_FAST_LANE=0``, where every request goes through Django's views. Each user-visible request
is sent to both, by two users funded alike; the status, the body (ids and times aside) and the
headers a client reads must be the same. A request the lane does not answer reaches Django with
its body intact, which the malformed, unauthenticated and odd-query cases show.
"""

import asyncio
import json
import re
import time
from decimal import Decimal

import pytest
import requests

from accounts.services import token_create, token_revoke
from exchange_site.asgi import FAST_ROUTES
from exchange_site.fast_lane import FastLane
from exchange_site.testing import HttpClient, WebTier
from ledger.selectors import balances_for_user
from orders.models import Order
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HEADERS = ("content-type", "allow", "x-content-type-options", "referrer-policy", "x-frame-options", "retry-after")


@pytest.fixture
def market(db):
    return MarketFactory()


@pytest.fixture
def tiers(transactional_db):
    lane, django = WebTier(processes=1).start(), WebTier(processes=1, API_FAST_LANE="0").start()
    yield lane, django
    lane.stop()
    django.stop()


def _plain(value):
    """A body with what must differ between two users' identical requests (ids, times) masked."""
    if isinstance(value, dict):
        return {
            key: "<id>" if key == "id" else "<time>" if key in ("created_at", "updated_at") else _plain(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        return re.sub(r"\(\d+\)", "(<id>)", value)
    return value


def _answer(response: requests.Response):
    headers = {name: response.headers.get(name) for name in HEADERS}
    try:
        body = _plain(response.json())
    except ValueError:
        body = response.text
    return response.status_code, headers, body


def _both(clients, method: str, path: str, **kwargs):
    answers = [_answer(client.request(method, path, **kwargs)) for client in clients]
    assert answers[0] == answers[1], f"{method} {path}: fast lane {answers[0]} != Django {answers[1]}"
    return answers[0]


def test_the_fast_lane_answers_orders_and_depth_as_django_does(tiers, market, funded, shard_worker):
    lane, django = tiers
    users = [funded(USD="1000", BTC="1") for _ in tiers]
    clients = [HttpClient(tier.url, token_create(user=user)[1]) for tier, user in zip(tiers, users, strict=True)]
    order = {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "1"}

    assert _both(clients, "POST", "/orders", json=order)[0] == 201
    assert _both(clients, "POST", "/orders", json={**order, "price": "100.005"})[2]["error"]["code"] == "invalid_price"
    assert (
        _both(clients, "POST", "/orders", json={**order, "quantity": "50"})[2]["error"]["code"] == "insufficient_funds"
    )
    assert _both(clients, "POST", "/orders", json={**order, "symbol": "NOPE-USD"})[0] == 400
    assert _both(clients, "POST", "/orders", json={**order, "price": 100})[0] == 400  # a JSON number
    assert _both(clients, "POST", "/orders", json={**order, "client_order_id": "a-1"})[0] == 201
    assert _both(clients, "POST", "/orders", json={**order, "client_order_id": "a-1"})[0] == 200
    reused = _both(clients, "POST", "/orders", json={**order, "price": "99", "client_order_id": "a-1"})
    assert reused[0] == 409 and reused[2]["error"]["code"] == "client_order_id_reused"
    batch = {"orders": [order, {**order, "side": "sideways"}, {**order, "type": "market"}, {"symbol": 1}]}
    status, _, body = _both(clients, "POST", "/orders/batch", json=batch)
    assert status == 200 and [result["status"] for result in body["results"]] == [201, 400, 400, 400]
    assert _both(clients, "POST", "/orders/batch", json={"orders": []})[0] == 400

    # Not the lane's plain case: Django answers, with the body the lane already read.
    assert _both(clients, "POST", "/orders", data=b"{not json", headers={"Content-Type": "application/json"})[0] == 400
    assert _both(clients, "POST", "/orders", data=b"symbol=BTC-USD", headers={"Content-Type": "text/plain"})[0] == 415
    anonymous = [HttpClient(tier.url) for tier in tiers]
    assert _both(anonymous, "POST", "/orders", json=order)[0] == 401
    forged = [HttpClient(tier.url, "not-a-key") for tier in tiers]
    assert _both(forged, "POST", "/orders", json=order)[0] == 401

    shard_worker.wait_idle()
    assert _both(anonymous, "GET", "/markets/BTC-USD/depth")[2]["bids"] == [["100", "6"]]
    assert _both(anonymous, "GET", "/markets/btc-usd/depth", params={"limit": "1"})[0] == 200
    for limit in ("0", "1001", "x", "01"):
        _both(anonymous, "GET", "/markets/BTC-USD/depth", params={"limit": limit})
    assert _both(anonymous, "GET", "/markets/NOPE-USD/depth")[0] == 404

    # Both users hold the same: the lane placed what Django placed, and nothing for the refused.
    assert Order.objects.filter(user=users[0]).count() == Order.objects.filter(user=users[1]).count() == 3
    held = [{row["asset"]: row for row in balances_for_user(user=user)} for user in users]
    assert held[0] == held[1]
    assert held[0]["USD"]["locked"] == Decimal("300")


def _call(app, method: str, path: str, *, body: bytes = b"", query: bytes = b"", headers=(), scheme="http", full=False):
    """One request through an ASGI app in this process; (status, body), with the headers if ``full``."""
    sent: list[dict] = []
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(b"host", b"testserver"), *headers],
        "scheme": scheme,
        "client": ("127.0.0.1", 5000),
    }
    messages = [
        {"type": "http.request", "body": body[:5], "more_body": True},
        {"type": "http.request", "body": body[5:]},
    ]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    answer = sent[0]["status"], b"".join(message.get("body", b"") for message in sent[1:])
    return (*answer, dict(sent[0]["headers"])) if full else answer


def test_the_lane_answers_only_the_plain_case_and_hands_the_rest_to_django_with_its_body(market, funded):
    handed: list[tuple[str, bytes]] = []

    async def django(scope, receive, send):
        message = await receive()
        handed.append((scope["path"], message["body"]))
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    lane = FastLane(django, FAST_ROUTES)
    key = token_create(user=funded(USD="1000"))[1]
    token = [(b"authorization", f"Token {key}".encode()), (b"content-type", b"application/json")]
    order = json.dumps({"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "1"}).encode()

    status, body = _call(lane, "POST", "/api/v1/orders", body=order, headers=token)
    assert status == 201 and json.loads(body)["status"] == "pending"
    status, body = _call(lane, "POST", "/api/v1/orders/batch", body=b'{"orders": [' + order + b"]}", headers=token)
    assert status == 200 and json.loads(body)["results"][0]["status"] == 201
    assert _call(lane, "GET", "/api/v1/markets/BTC-USD/depth", query=b"limit=5")[0] == 200
    assert handed == []

    assert _call(lane, "POST", "/api/v1/orders", body=b"{oops", headers=token)[0] == 599
    assert _call(lane, "POST", "/api/v1/orders", body=order, headers=token[1:])[0] == 599  # no token
    assert (
        _call(lane, "POST", "/api/v1/orders", body=order, headers=[(b"authorization", b"Token nope"), token[1]])[0]
        == 599
    )
    assert _call(lane, "GET", "/api/v1/markets/BTC-USD/depth", query=b"limit=0")[0] == 599
    assert _call(lane, "GET", "/api/v1/markets/NOPE-USD/depth")[0] == 599
    assert _call(lane, "GET", "/api/v1/orders")[0] == 599  # not a lane route
    assert handed == [
        ("/api/v1/orders", b"{oops"),
        ("/api/v1/orders", order),
        ("/api/v1/orders", order),
        ("/api/v1/markets/BTC-USD/depth", b""),
        ("/api/v1/markets/NOPE-USD/depth", b""),
        ("/api/v1/orders", b""),
    ]
    assert Order.objects.count() == 2


def test_a_revoked_token_is_refused_by_every_web_process_within_moments(tiers, market, funded):
    trader = funded(USD="1000")
    token, key = token_create(user=trader)
    clients = [HttpClient(tier.url, key) for tier in tiers]
    order = {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "1"}
    assert [client.post("/orders", order).status_code for client in clients] == [201, 201]  # both memos hold it

    token_revoke(user=trader, token_id=token.pk)
    # Each process's memo is dropped by the change's message (exchange_site/local_cache.py), so the
    # first request after it is normally refused; a message still in flight may let one more through.
    deadline = time.monotonic() + 2
    while (status := clients[0].post("/orders", order).status_code) == 201 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert status == 401
    assert clients[1].post("/orders", order).status_code == 401


def test_where_https_is_required_the_lane_answers_only_https_and_sends_hsts(market, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    handed = []

    async def django(scope, receive, send):
        handed.append(scope["scheme"])
        await send({"type": "http.response.start", "status": 301, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    lane = FastLane(django, FAST_ROUTES)
    assert _call(lane, "GET", "/api/v1/markets/BTC-USD/depth")[0] == 301  # Django redirects plain http
    status, _, headers = _call(lane, "GET", "/api/v1/markets/BTC-USD/depth", scheme="https", full=True)
    assert status == 200 and headers[b"strict-transport-security"].startswith(b"max-age=3600")
    assert headers[b"x-content-type-options"] == b"nosniff" and headers[b"x-frame-options"] == b"DENY"
    assert handed == ["http"]
