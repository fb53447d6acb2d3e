"""The order lifecycle journal: what GET /orders/{id}/events shows, and that every row is the fold of its events."""

import random
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.services import token_create
from exchange_site.errors import RuleViolation
from orders.journal import order_fold, order_row_fold
from orders.models import Order, OrderEvent
from orders.services import order_cancel, order_place

from .factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def api(user) -> APIClient:
    client = APIClient()
    _, key = token_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def market(db):
    return MarketFactory()


def events_of(user, order_id) -> list[dict]:
    response = api(user).get(f"/api/v1/orders/{order_id}/events")
    assert response.status_code == 200, response.json()
    return response.json()


def test_an_order_s_events_tell_its_life_oldest_first(shard_worker, market, funded):
    maker, taker = funded(BTC="1"), funded(USD="10000")
    sell, _ = order_place(user=maker, symbol="BTC-USD", side="sell", price="2500", quantity="0.4")
    shard_worker.wait_idle()
    order_place(user=taker, symbol="BTC-USD", side="buy", price="2500", quantity="0.1")
    shard_worker.wait_idle()
    order_cancel(user=maker, order_id=sell.pk)
    shard_worker.wait_idle()

    events = events_of(maker, sell.pk)
    assert [(e["sequence"], e["type"]) for e in events] == [
        (1, "accepted"),
        (2, "opened"),
        (3, "partially_filled"),
        (4, "cancel_requested"),
        (5, "canceled"),
    ]
    accepted, opened, fill, cancel_requested, canceled = events
    assert (accepted["price"], accepted["quantity"], accepted["remaining_quantity"]) == ("2500", "0.4", "0.4")
    assert (opened["filled_quantity"], opened["remaining_quantity"]) == ("0", "0.4")
    assert (fill["price"], fill["quantity"], fill["filled_quantity"], fill["remaining_quantity"]) == (
        "2500",
        "0.1",
        "0.1",
        "0.3",
    )
    assert (cancel_requested["filled_quantity"], cancel_requested["price"]) == ("0.1", None)
    assert (canceled["remaining_quantity"], canceled["reason"]) == ("0", "canceled_by_user")
    assert set(accepted) == {
        "sequence",
        "type",
        "at",
        "filled_quantity",
        "remaining_quantity",
        "price",
        "quantity",
        "reason",
    }


def test_a_taker_that_fills_at_once_never_opens_and_an_ioc_remainder_expires(shard_worker, market, funded):
    maker, taker = funded(BTC="1"), funded(USD="10000")
    order_place(user=maker, symbol="BTC-USD", side="sell", price="100", quantity="0.2")
    order_place(user=maker, symbol="BTC-USD", side="sell", price="101", quantity="0.2")
    shard_worker.wait_idle()
    whole, _ = order_place(user=taker, symbol="BTC-USD", side="buy", price="100", quantity="0.2")
    ioc, _ = order_place(user=taker, symbol="BTC-USD", side="buy", price="101", quantity="0.5", time_in_force="IOC")
    shard_worker.wait_idle()

    assert [(e["type"], e["price"], e["quantity"]) for e in events_of(taker, whole.pk)] == [
        ("accepted", "100", "0.2"),
        ("filled", "100", "0.2"),
    ]
    assert [(e["type"], e["filled_quantity"], e["reason"]) for e in events_of(taker, ioc.pk)] == [
        ("accepted", "0", None),
        ("partially_filled", "0.2", None),
        ("expired", "0.2", "ioc_remainder"),
    ]


def test_another_user_s_order_events_are_not_found(market, funded):
    owner, other = funded(USD="1000"), funded(USD="1000")
    order, _ = order_place(user=owner, symbol="BTC-USD", side="buy", price="10", quantity="1")
    response = api(other).get(f"/api/v1/orders/{order.pk}/events")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "order_not_found"
    assert api(owner).get("/api/v1/orders/999999999/events").status_code == 404


def test_events_cannot_be_changed_or_deleted(market, funded):
    order, _ = order_place(user=funded(USD="1000"), symbol="BTC-USD", side="buy", price="10", quantity="1")
    event = OrderEvent.objects.get(order=order)
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()


# --- a seeded random stream through the real shard, with crashes ------------------------------


def random_command(rng: random.Random, traders, mine: dict[int, list[int]]):
    """One placement or cancel, as a bot of many kinds would send it."""
    user = rng.choice(traders)
    roll = rng.random()
    if roll < 0.2 and mine[user.pk]:
        return "cancel", user, {"order_id": rng.choice(mine[user.pk])}
    side = rng.choice(["buy", "sell"])
    quantity = str(Decimal(rng.randint(1, 30)) / 100)
    if roll < 0.3:
        if side == "buy" and rng.random() < 0.5:
            return "place", user, {"side": side, "type": "market", "quote_quantity": str(rng.randint(2, 20))}
        return "place", user, {"side": side, "type": "market", "quantity": quantity}
    # Around 100, crossing often: fills, partial fills, post-only rejections and self-trades all happen.
    price = Decimal(rng.randint(9800, 10200)) / 100
    return (
        "place",
        user,
        {
            "side": side,
            "type": "limit",
            "price": str(price),
            "quantity": quantity,
            "time_in_force": rng.choice(["GTC", "GTC", "GTC", "IOC", "FOK"]),
            "post_only": rng.random() < 0.15,
            "stp": rng.choice(["cancel_newest", "cancel_oldest", "cancel_both", "none"]),
        },
    )


def stream_run(rng, traders, commands: int) -> dict[int, list[int]]:
    mine: dict[int, list[int]] = {trader.pk: [] for trader in traders}
    for _ in range(commands):
        kind, user, fields = random_command(rng, traders, mine)
        try:
            if kind == "cancel":
                order_cancel(user=user, **fields)
            else:
                order, _ = order_place(user=user, symbol="BTC-USD", **fields)
                mine[user.pk].append(order.pk)
        except RuleViolation:
            pass  # no liquidity for a market order, an order already done: refused and nothing changed
    return mine


@pytest.mark.parametrize("seed", [11, 2027])
def test_every_order_row_is_the_fold_of_its_events_across_a_random_stream_and_crashes(
    shard_worker, market, funded, seed
):
    rng = random.Random(seed)
    traders = [funded(USD="100000", BTC="1000") for _ in range(12)]
    for _ in range(3):
        stream_run(rng, traders, 150)
        # SIGKILL mid-stream: batches in flight are lost with their events, then replayed once.
        shard_worker.kill()
        stream_run(rng, traders, 50)
        shard_worker.start()
    stream_run(rng, traders, 100)
    shard_worker.wait_idle(timeout=120)

    orders = list(Order.objects.all())
    events: dict[int, list[OrderEvent]] = {order.pk: [] for order in orders}
    for event in OrderEvent.objects.order_by("id"):
        events[event.order_id].append(event)
    assert len(orders) > 300
    statuses = {order.status for order in orders}
    assert {"open", "partially_filled", "filled", "canceled", "expired", "rejected"} <= statuses, statuses
    for order in orders:
        assert order_fold(events[order.pk]) == order_row_fold(order), (order.pk, [e.type for e in events[order.pk]])
        assert events[order.pk][0].type == "accepted"
        state_events = [e for e in events[order.pk] if e.type != "cancel_requested"]
        # Nothing happens to an order after it ends.
        assert all(e.type not in ("filled", "canceled", "expired", "rejected") for e in state_events[:-1])
