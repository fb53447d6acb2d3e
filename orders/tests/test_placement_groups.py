"""Several users' orders placed in one transaction (``orders_place_many``, the order door's groups):
each request keeps its own answer, its own funds check and its own client_order_id."""

import asyncio
from decimal import Decimal

import pytest

from accounts.services import token_create
from orders.models import Order
from orders.placement_groups import PlacementGroups
from orders.services import orders_place_many

from .helpers import balance, queued


def limit(price="100", quantity="1", **fields):
    return {"symbol": "BTC-USD", "side": "buy", "price": price, "quantity": quantity, **fields}


def test_one_set_for_many_users_answers_each_request_on_its_own(market, funded, django_capture_on_commit_callbacks):
    alice, bob = funded(USD="250"), funded(USD="100")
    with django_capture_on_commit_callbacks(execute=True):
        results = orders_place_many(
            entries=[
                (alice, [limit(client_order_id="x")]),
                (bob, [limit(), limit()]),  # the second is more than bob has left
                (alice, [limit(client_order_id="x")]),  # the same client_order_id again: a replay of the first
                (alice, [limit(price="1.001")]),
                (alice, [limit(client_order_id="y")]),
                (alice, [limit(client_order_id="z")]),  # 300 held would be more than alice has
            ]
        )
    codes = [[result.status if result.error is None else result.error.code for result in entry] for entry in results]
    assert codes == [[201], [201, "insufficient_funds"], [200], ["invalid_price"], [201], ["insufficient_funds"]]
    assert results[2][0].order.pk == results[0][0].order.pk
    assert Order.objects.filter(user=alice).count() == 2 and Order.objects.filter(user=bob).count() == 1
    assert balance(alice, "USD") == (Decimal(50), Decimal(200))
    assert balance(bob, "USD") == (Decimal(0), Decimal(100))
    assert len(queued()) == 3


@pytest.mark.django_db(transaction=True)
def test_requests_arriving_while_a_group_is_placed_go_together_in_the_next(market, funded):
    traders = [funded(USD="1000") for _ in range(5)]
    keys = [token_create(user=trader)[1] for trader in traders]

    async def scenario():
        groups = PlacementGroups(lanes=1)
        return await asyncio.gather(*(groups.place(key=key, requests=[limit()]) for key in keys))

    answers = asyncio.run(scenario())
    assert [answer[0].status for answer in answers] == [201] * 5
    # One transaction stamps its orders alike: the first request alone, the four that waited together.
    stamps = sorted(Order.objects.values_list("created_at", flat=True))
    assert len(set(stamps)) == 2 and stamps.count(stamps[-1]) == 4


@pytest.mark.django_db(transaction=True)
def test_an_unknown_key_is_left_to_django_and_does_not_hold_up_the_others(market, funded):
    key = token_create(user=funded(USD="1000"))[1]

    async def scenario():
        groups = PlacementGroups(lanes=1)
        return await asyncio.gather(
            groups.place(key=key, requests=[limit()]),
            groups.place(key="unknown", requests=[limit()]),
            groups.place(key=key, requests=[limit()]),
        )

    first, unknown, third = asyncio.run(scenario())
    assert unknown is None and first[0].status == third[0].status == 201
