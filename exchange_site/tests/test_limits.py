"""Rate limits, body limits and the websocket message budget: refused in the error format, never a 5xx."""

import json
import time
import urllib.error
import urllib.request

import pytest
from django.test import Client

from accounts.services import token_create
from exchange_site.throttling import MessageBudget, rate_parse
from orders.models import Order
from orders.tests.factories import MarketFactory

ORDER = {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.5"}


def get(url: str, token: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_web_processes_share_one_limit_and_it_resets(daphne_pair, user):
    token = token_create(user=user)[1]
    first, second = daphne_pair
    # The burst must fall in one 10 s window: start it at the beginning of a window.
    if time.time() % 10 > 6:
        time.sleep(10 - time.time() % 10)
    results = [get((first if n % 2 == 0 else second).url + "/api/v1/balances", token) for n in range(8)]
    statuses = [status for status, _, _ in results]
    # Each process saw four requests, under the limit of six: only a shared count refuses the last two.
    assert statuses == [200] * 6 + [429] * 2
    for _status, headers, body in results[6:]:
        assert body["error"]["code"] == "rate_limited" and set(body["error"]) == {"code", "message", "fields"}
        assert 1 <= int(headers["Retry-After"]) <= 10
    retry_after = int(results[-1][1]["Retry-After"])
    deadline = time.monotonic() + retry_after + 2
    while (status := get(second.url + "/api/v1/balances", token)[0]) == 429 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 200


@pytest.fixture
def small_limits(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "3/min", "anon": "2/min"}}


@pytest.mark.django_db
def test_anonymous_calls_are_limited_per_address(small_limits, usd, btc):
    MarketFactory(symbol="BTC-USD")
    client = Client()
    assert [client.get("/api/v1/markets").status_code for _ in range(2)] == [200, 200]
    refused = client.get("/api/v1/markets")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    # Another address has its own count.
    assert Client(REMOTE_ADDR="10.0.0.9").get("/api/v1/markets").status_code == 200


@pytest.mark.django_db
def test_a_user_limit_counts_the_user_not_the_address(small_limits, user):
    token = token_create(user=user)[1]
    statuses = [
        Client(REMOTE_ADDR=f"10.0.0.{n}").get("/api/v1/balances", HTTP_AUTHORIZATION=f"Token {token}").status_code
        for n in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_rates_parse():
    assert rate_parse("60000/min") == (60000, 60)
    assert rate_parse("5/10s") == (5, 10)
    assert rate_parse("100/day") == (100, 86400)
    with pytest.raises(ValueError):
        rate_parse("fast")


@pytest.fixture
def trader(funded):
    MarketFactory(symbol="BTC-USD")
    trader = funded(USD="1000")
    return trader, token_create(user=trader)[1]


def post(token: str, body: bytes, **extra):
    return Client().post(
        "/api/v1/orders", body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}", **extra
    )


@pytest.mark.django_db
def test_a_body_over_the_size_limit_is_413(settings, trader):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    user, token = trader
    body = json.dumps({**ORDER, "client_order_id": "x", "padding": "y" * 3000}).encode()
    response = post(token, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Order.objects.filter(user=user).exists()
    assert post(token, json.dumps(ORDER).encode()).status_code == 201


@pytest.mark.django_db
def test_a_signed_body_over_the_size_limit_is_413(settings, trader):
    from accounts.services import api_key_create
    from accounts.tests.factories import signed_headers

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    user, _ = trader
    api_key, secret = api_key_create(user=user)
    body = json.dumps({**ORDER, "padding": "y" * 3000}).encode()
    headers = signed_headers(key_id=api_key.key_id, secret=secret, method="POST", path="/api/v1/orders", body=body)
    response = Client().post("/api/v1/orders", body, content_type="application/json", **headers)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"symbol": ', "parse_error"),
        (b"\xff\xfe{}", "parse_error"),
        (b'{"symbol": NaN}', "parse_error"),
        (b'{"a": ' * 33 + b"1" + b"}" * 33, "too_deep"),
        (b"[" * 5000 + b"]" * 5000, "too_deep"),
        (b'{"a": ' * 5000 + b"{}" + b"}" * 5000, "too_deep"),
        (b"[" * 100000, "too_deep"),
    ],
    ids=["truncated", "not-utf8", "nan", "depth-33", "5000-arrays", "5000-objects", "unclosed-100000"],
)
def test_bad_json_is_400_in_the_error_format(trader, body, code):
    user, token = trader
    response = post(token, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not Order.objects.filter(user=user).exists()


def test_the_websocket_budget_refuses_then_disconnects():
    budget = MessageBudget(burst=3, rate=0.0001, strikes=2)
    assert [budget.spend() for _ in range(5)] == [True, True, True, False, False]
    assert budget.exhausted


@pytest.mark.django_db(transaction=True)
def test_a_flooding_websocket_client_is_told_then_closed(settings):
    import asyncio

    from channels.testing import WebsocketCommunicator

    from exchange_site.asgi import application
    from exchange_site.throttling import WS_CLOSE_RATE_LIMITED

    settings.WS_MESSAGE_BURST, settings.WS_MESSAGES_PER_SECOND, settings.WS_MESSAGE_STRIKES = 5, 0.001, 3

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/stream", headers=[(b"origin", b"http://testserver")])
        assert (await communicator.connect())[0]
        for _ in range(5):
            await communicator.send_json_to({"op": "ping"})
            assert await communicator.receive_json_from() == {"type": "pong"}
        await communicator.send_json_to({"op": "ping"})
        refused = await communicator.receive_json_from()
        assert refused["type"] == "error" and refused["code"] == "rate_limited"
        await communicator.send_json_to({"op": "ping"})
        assert (await communicator.receive_json_from())["code"] == "rate_limited"
        await communicator.send_json_to({"op": "ping"})
        closed = await communicator.receive_output()
        assert closed == {"type": "websocket.close", "code": WS_CLOSE_RATE_LIMITED}
        await communicator.disconnect()

    asyncio.run(scenario())
