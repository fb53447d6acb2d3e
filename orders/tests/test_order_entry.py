"""Order entry beyond one order: batches, cancel-all, client ids, strict amounts, GTD, the journal."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import token_create
from exchange_site import redis as redis_
from ledger.models import Transfer
from orders.models import Market, Order, OrderEvent
from orders.services import market_set_status, orders_place

from .factories import MarketFactory
from .helpers import api, balance, queued

pytestmark = pytest.mark.django_db(transaction=True)


def limit(side="buy", price="100", quantity="1", **extra) -> dict:
    return {"symbol": "BTC-USD", "side": side, "type": "limit", "price": price, "quantity": quantity, **extra}


def test_a_batch_answers_each_order_on_its_own_and_holds_only_for_the_good_ones(trader):
    response = api(trader).post(
        "/api/v1/orders/batch",
        {
            "orders": [
                limit(price="100", quantity="2"),  # 200 USD
                limit(price="100.005"),  # off tick
                limit(side="sell", price="150", quantity="1.5"),  # 1.5 BTC
                limit(price="700", quantity="1"),  # 700 USD: only 800 left, fits
                limit(price="200", quantity="1"),  # 200 USD: only 100 left
                {"symbol": "BTC-USD", "side": "buy", "price": 10.0, "quantity": "1"},  # a JSON number
                "not an order",
            ]
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 201, 201, 400, 400, 400]
    assert [r.get("error", {}).get("code") for r in results] == [
        None,
        "invalid_price",
        None,
        None,
        "insufficient_funds",
        "invalid",
        "invalid",
    ]
    assert results[5]["error"]["fields"] == {"price": ['A decimal string ("10.5"), not a number or other text.']}
    assert balance(trader, "USD") == (Decimal("100"), Decimal("900"))
    assert balance(trader, "BTC") == (Decimal("0.5"), Decimal("1.5"))
    ids = [r["order"]["id"] for r in results if r["status"] == 201]
    assert queued() == [f"n:{i}".encode() for i in ids]
    assert Transfer.objects.filter(kind="hold").count() == 3


def test_a_batch_must_hold_1_to_50_orders(trader):
    client = api(trader)
    for body in ({"orders": []}, {"orders": [limit()] * 51}, {"orders": "x"}, [limit()]):
        response = client.post("/api/v1/orders/batch", body, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert Order.objects.count() == 0 and queued() == []


def test_placing_journals_an_accepted_event_per_order(trader, market):
    client = api(trader)
    client.post("/api/v1/orders", limit(price="100", quantity="2"), format="json")
    redis_.client().hset(f"{redis_.key('top', 'BTC-USD')}", mapping={"bid": "99", "ask": "101"})
    client.post(
        "/api/v1/orders",
        {"symbol": "BTC-USD", "side": "buy", "type": "market", "quote_quantity": "50"},
        format="json",
    )
    limit_order, market_buy = Order.objects.order_by("id")
    events = list(OrderEvent.objects.order_by("id").values())
    assert [(e["order_id"], e["type"]) for e in events] == [(limit_order.pk, "accepted"), (market_buy.pk, "accepted")]
    first, second = events
    assert first["at"] == limit_order.created_at
    assert (first["price"], first["quantity"], first["remaining_quantity"]) == (Decimal(100), Decimal(2), Decimal(2))
    assert (first["filled_quantity"], first["filled_quote"], first["reason"]) == (0, 0, "")
    assert (second["price"], second["quantity"], second["remaining_quantity"]) == (None, None, None)


def test_cancel_all_asks_once_per_live_order_and_journals_it(trader, funded):
    client = api(trader)
    ids = [client.post("/api/v1/orders", limit(price=p), format="json").json()["id"] for p in ("10", "11", "12")]
    other = funded(USD="100")
    api(other).post("/api/v1/orders", limit(price="10"), format="json")
    response = client.delete("/api/v1/orders?symbol=BTC-USD")
    assert response.status_code == 202 and response.json() == {"canceled": 3}
    assert queued()[-3:] == [f"c:{i}".encode() for i in ids]
    assert client.delete("/api/v1/orders").json() == {"canceled": 0}  # asked already: nothing new
    assert queued()[-3:] == [f"c:{i}".encode() for i in ids]  # but queued again: it may be a retry
    assert OrderEvent.objects.filter(type="cancel_requested").count() == 3
    assert Order.objects.filter(user=other, cancel_requested_at__isnull=True).count() == 1
    events = OrderEvent.objects.filter(type="cancel_requested").order_by("order_id")
    assert [(e.order_id, e.remaining_quantity, e.price, e.quantity) for e in events] == [
        (i, Decimal(1), None, None) for i in ids
    ]
    assert client.delete("/api/v1/orders?symbol=NOPE-USD").status_code == 400


def test_by_client_id_reads_and_cancels_only_the_callers_order(trader, funded):
    client = api(trader)
    placed = client.post("/api/v1/orders", limit(client_order_id="mine-1"), format="json").json()
    found = client.get("/api/v1/orders/by-client-id/mine-1")
    assert found.status_code == 200 and found.json()["id"] == placed["id"] and found.json()["fills"] == []
    intruder = api(funded(USD="5"))
    assert intruder.get("/api/v1/orders/by-client-id/mine-1").status_code == 404
    refused = intruder.delete("/api/v1/orders/by-client-id/mine-1")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "order_not_found"
    assert Order.objects.get().cancel_requested_at is None
    canceled = client.delete("/api/v1/orders/by-client-id/mine-1")
    assert canceled.status_code == 202 and canceled.json()["id"] == placed["id"]
    assert queued() == [f"n:{placed['id']}".encode(), f"c:{placed['id']}".encode()]
    assert client.get("/api/v1/orders/by-client-id/unknown").status_code == 404


def test_client_order_id_replays_and_conflicts_also_inside_one_batch(trader):
    client = api(trader)
    results = client.post(
        "/api/v1/orders/batch",
        {
            "orders": [
                limit(client_order_id="b-1"),
                limit(quantity="1.0", client_order_id="b-1"),  # the same order again
                limit(quantity="2", client_order_id="b-1"),  # a different one
            ]
        },
        format="json",
    ).json()["results"]
    assert [r["status"] for r in results] == [201, 200, 409]
    assert results[1]["order"]["id"] == results[0]["order"]["id"]
    assert results[2]["error"]["code"] == "client_order_id_reused"
    assert Order.objects.count() == 1 and balance(trader, "USD") == (Decimal("900"), Decimal("100"))


STRICT = [
    ({"price": 10.0}, "price"),
    ({"quantity": 1}, "quantity"),
    ({"quantity": True}, "quantity"),
    ({"price": "١٠٠"}, "price"),  # Arabic-Indic digits
    ({"price": "1e2"}, "price"),
    ({"price": " 100"}, "price"),
    ({"quantity": "1 "}, "quantity"),
    ({"price": "+100"}, "price"),
    ({"price": "100\n"}, "price"),
    ({"quantity": "0x1"}, "quantity"),
    ({"price": "NaN"}, "price"),
    ({"price": "1_000"}, "price"),
    ({"quantity": "0.0000000000000000001"}, "quantity"),
    ({"price": "1000000000000000000"}, "price"),
]


@pytest.mark.parametrize(("change", "field"), STRICT, ids=[repr(c) for c, _ in STRICT])
def test_amounts_are_ascii_decimal_strings_only(trader, change, field):
    response = api(trader).post("/api/v1/orders", limit(**change), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"]
    assert Order.objects.count() == 0 and Transfer.objects.filter(kind="hold").count() == 0 and queued() == []


def test_a_quote_budget_under_one_tick_times_lot_is_refused(trader):
    redis_.client().hset(redis_.key("top", "BTC-USD"), mapping={"bid": "99", "ask": "101"})
    order = {"symbol": "BTC-USD", "side": "buy", "type": "market"}
    refused = api(trader).post("/api/v1/orders", {**order, "quote_quantity": "0.000009"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "quote_quantity_too_small"
    assert Order.objects.count() == 0 and queued() == []
    MarketFactory(symbol="ETH-USD", min_notional=Decimal(0))
    smallest = {**order, "symbol": "ETH-USD"}
    redis_.client().hset(redis_.key("top", "ETH-USD"), mapping={"bid": "99", "ask": "101"})
    assert (
        api(trader).post("/api/v1/orders", {**smallest, "quote_quantity": "0.00001"}, format="json").status_code == 201
    )


def test_gtd_needs_a_future_expire_at_and_only_gtd_takes_one(trader):
    client = api(trader)
    future = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    cases = [
        ({"time_in_force": "GTD"}, "expire_at"),
        ({"time_in_force": "GTD", "expire_at": (timezone.now() - timedelta(seconds=1)).isoformat()}, "expire_at"),
        ({"time_in_force": "GTD", "expire_at": "tomorrow"}, "expire_at"),
        ({"time_in_force": "GTC", "expire_at": future.isoformat()}, "expire_at"),
        ({"type": "market", "price": None, "time_in_force": "GTD", "expire_at": future.isoformat()}, "time_in_force"),
    ]
    for change, field in cases:
        response = client.post("/api/v1/orders", limit(**change), format="json")
        assert response.status_code == 400, (change, response.content)
        assert field in response.json()["error"]["fields"]
    assert Order.objects.count() == 0 and queued() == []
    placed = client.post(
        "/api/v1/orders", limit(time_in_force="GTD", expire_at=future.isoformat().replace("+00:00", "Z")), format="json"
    )
    assert placed.status_code == 201, placed.content
    assert placed.json()["expire_at"] == future.isoformat().replace("+00:00", "Z")
    assert Order.objects.get().expire_at == future
    plain = client.post("/api/v1/orders", limit(), format="json").json()
    assert plain["expire_at"] is None


def test_a_halt_through_the_service_refuses_at_once_after_orders_were_taken(trader, market):
    client = api(trader)
    assert client.post("/api/v1/orders", limit(), format="json").status_code == 201
    market_set_status(market=market, status=Market.Status.HALTED)
    response = client.post("/api/v1/orders", limit(), format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "market_halted"
    market_set_status(market=market, status=Market.Status.OPEN)
    assert client.post("/api/v1/orders", limit(), format="json").status_code == 201


def test_a_revoked_token_is_refused_at_once_after_it_was_used(trader):
    from accounts.services import token_revoke

    client = APIClient()
    token, key = token_create(user=trader)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/v1/orders", limit(), format="json").status_code == 201
    token_revoke(user=trader, token_id=token.pk)
    assert client.post("/api/v1/orders", limit(), format="json").status_code == 401


def test_a_batch_of_orders_costs_a_fixed_number_of_statements(trader):
    orders_place(user=trader, requests=[limit(price="1", quantity="1")])  # accounts created, market remembered
    with CaptureQueriesContext(connection) as one:
        orders_place(user=trader, requests=[limit(price="1", quantity="1")])
    with CaptureQueriesContext(connection) as fifty:
        results = orders_place(user=trader, requests=[limit(price="1", quantity="1")] * 50)
    assert [r.status for r in results] == [201] * 50
    # BEGIN, SELECT ... FOR UPDATE, INSERT orders, INSERT holds, UPDATE balances, INSERT events, COMMIT.
    assert len(fifty.captured_queries) == len(one.captured_queries) <= 7


def test_batches_racing_for_one_users_funds_never_overdraw(trader):
    """Two connections place at once for one user: the account lock lets exactly what fits through."""
    import threading

    from django.db import connections

    outcomes: list = []

    def place():
        try:
            outcomes.extend(r.status for r in orders_place(user=trader, requests=[limit(price="100")] * 6))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=place) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 1000 USD buys ten orders of 100, whoever comes first.
    assert sorted(outcomes) == [201] * 10 + [400] * 2
    assert balance(trader, "USD") == (Decimal(0), Decimal(1000))
    assert Order.objects.count() == 10 and len(queued()) == 10
