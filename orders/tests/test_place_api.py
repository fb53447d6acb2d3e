"""Placing and canceling through the API: bad input is a 4xx in the error format, holds nothing, queues nothing."""

from decimal import Decimal

import pytest

from ledger.models import Transfer
from orders.models import Market, Order, OrderEvent

from .helpers import api, balance, queued

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_limit_buy_holds_price_times_quantity_and_is_queued(trader):
    response = api(trader).post(
        "/api/v1/orders",
        {
            "symbol": "BTC-USD",
            "side": "buy",
            "type": "limit",
            "price": "100.50",
            "quantity": "2.000",
            "client_order_id": "a1",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert body["price"] == "100.5" and body["quantity"] == "2" and body["remaining_quantity"] == "2"
    assert balance(trader, "USD") == (Decimal("799"), Decimal("201"))
    assert queued() == [f"n:{body['id']}".encode()]


def test_a_limit_sell_holds_base(trader):
    response = api(trader).post(
        "/api/v1/orders", {"symbol": "BTC-USD", "side": "sell", "price": "100", "quantity": "1.5"}, format="json"
    )
    assert response.status_code == 201
    assert balance(trader, "BTC") == (Decimal("0.5"), Decimal("1.5"))


def test_the_same_client_order_id_returns_the_existing_order_and_places_nothing(trader):
    client = api(trader)
    order = {"symbol": "BTC-USD", "side": "buy", "price": "10", "quantity": "1", "client_order_id": "dup-1"}
    first = client.post("/api/v1/orders", order, format="json")
    second = client.post("/api/v1/orders", {**order, "quantity": "1.000"}, format="json")
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["id"] == first.json()["id"] and second.json()["quantity"] == "1"
    # The same id for a different order is a conflict (API.md, v1 additions), and places nothing either.
    different = client.post("/api/v1/orders", {**order, "quantity": "5"}, format="json")
    assert different.status_code == 409 and different.json()["error"]["code"] == "client_order_id_reused"
    assert Order.objects.count() == 1
    assert balance(trader, "USD") == (Decimal("990"), Decimal("10"))
    # The replay of a still-pending order queues it again (its first push may have died with the
    # process that answered); the conflict queues nothing.
    assert queued() == [f"n:{first.json()['id']}".encode()] * 2


BAD = [
    ({"symbol": "DOGE-USD"}, 400, "unknown_market"),
    ({"price": "100.005"}, 400, "invalid_price"),
    ({"quantity": "0.0005"}, 400, "invalid_quantity"),
    ({"quantity": "0"}, 400, "invalid"),
    ({"quantity": "-1"}, 400, "invalid"),
    ({"price": "abc"}, 400, "invalid"),
    ({"price": None}, 400, "invalid"),
    ({"side": "hold"}, 400, "invalid"),
    ({"time_in_force": "DAY"}, 400, "invalid"),
    ({"stp": "sometimes"}, 400, "invalid"),
    ({"price": "0.01", "quantity": "1"}, 400, "below_min_notional"),
    ({"price": "2000", "quantity": "1"}, 400, "insufficient_funds"),
    ({"client_order_id": "x" * 37}, 400, "invalid"),
    ({"type": "market", "quantity": "1", "quote_quantity": "10"}, 400, "invalid"),
]


@pytest.mark.parametrize(("change", "status", "code"), BAD, ids=[case[2] + str(i) for i, case in enumerate(BAD)])
def test_bad_orders_are_refused_hold_nothing_and_queue_nothing(trader, change, status, code):
    order = {"symbol": "BTC-USD", "side": "buy", "type": "limit", "price": "100", "quantity": "1", **change}
    transfers = Transfer.objects.count()
    response = api(trader).post("/api/v1/orders", order, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert Order.objects.count() == 0
    assert Transfer.objects.count() == transfers
    assert queued() == []


def test_a_halted_market_refuses_orders(trader, market):
    Market.objects.filter(pk=market.pk).update(status=Market.Status.HALTED)
    response = api(trader).post(
        "/api/v1/orders", {"symbol": "BTC-USD", "side": "buy", "price": "1", "quantity": "1"}, format="json"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "market_halted"
    assert queued() == []


def test_malformed_json_is_a_400_in_the_error_format(trader):
    response = api(trader).generic("POST", "/api/v1/orders", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    response = api(trader).post("/api/v1/orders", [1, 2], format="json")
    assert response.status_code == 400


def test_a_market_buy_without_sellers_is_refused(trader):
    response = api(trader).post(
        "/api/v1/orders", {"symbol": "BTC-USD", "side": "buy", "type": "market", "quantity": "1"}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "no_liquidity"


def test_another_users_order_is_a_404_for_read_and_cancel(trader, funded):
    order = (
        api(trader)
        .post("/api/v1/orders", {"symbol": "BTC-USD", "side": "buy", "price": "10", "quantity": "1"}, format="json")
        .json()
    )
    intruder = api(funded(USD="5"))
    assert intruder.get(f"/api/v1/orders/{order['id']}").status_code == 404
    response = intruder.delete(f"/api/v1/orders/{order['id']}")
    assert response.status_code == 404 and response.json()["error"]["code"] == "order_not_found"
    assert len(queued()) == 1
    assert Order.objects.get().cancel_requested_at is None


def test_cancel_is_queued_behind_the_order_and_answers_202(trader):
    client = api(trader)
    order = client.post(
        "/api/v1/orders", {"symbol": "BTC-USD", "side": "buy", "price": "10", "quantity": "1"}, format="json"
    ).json()
    response = client.delete(f"/api/v1/orders/{order['id']}")
    assert response.status_code == 202
    assert queued() == [f"n:{order['id']}".encode(), f"c:{order['id']}".encode()]
    assert client.delete(f"/api/v1/orders/{order['id']}").status_code == 202
    # Asking again (a retry after a lost answer) queues the cancel again, but records it once.
    assert queued()[2:] == [f"c:{order['id']}".encode()]
    assert OrderEvent.objects.filter(order_id=order["id"], type="cancel_requested").count() == 1


def test_lists_are_newest_first_with_a_cursor(trader):
    client = api(trader)
    ids = [
        client.post(
            "/api/v1/orders", {"symbol": "BTC-USD", "side": "buy", "price": "10", "quantity": "1"}, format="json"
        ).json()["id"]
        for _ in range(3)
    ]
    first = client.get("/api/v1/orders", {"limit": 2})
    assert [o["id"] for o in first.json()] == ids[::-1][:2]
    second = client.get("/api/v1/orders", {"limit": 2, "cursor": first["X-Next-Cursor"]})
    assert [o["id"] for o in second.json()] == [ids[0]]
    assert client.get("/api/v1/orders", {"status": "closed"}).json() == []
    assert client.get("/api/v1/orders", {"status": "bogus"}).status_code == 400


def test_unknown_api_paths_and_malformed_ids_answer_in_the_error_format(trader):
    for path in ("/api/v1/orders/abc", "/api/v1/nothing-here"):
        response = api(trader).get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
