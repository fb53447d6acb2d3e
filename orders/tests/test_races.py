"""Races through the real web tier (two daphne processes on one socket) and the real shard process.

Each client is a thread with its own HTTP connection, so requests reach the server processes at
once and meet on the same database rows. After each race: every accepted order exists exactly once,
no request got a 5xx, and every ledger and hold invariant holds (the autouse fixture checks them
too, after the test).
"""

import random
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.services import token_create
from exchange_site.testing import HttpClient
from ledger.models import Transfer
from ledger.selectors import balances_for_user, ledger_problems
from orders.models import Order, Trade
from orders.selectors import hold_problems

from .factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def market(db):
    return MarketFactory(maker_fee=Decimal("0.001"), taker_fee=Decimal("0.002"))


def client_for(web_tier, user) -> HttpClient:
    _, key = token_create(user=user)
    return HttpClient(web_tier.url, key)


def run_together(*jobs) -> list:
    """Run the jobs on threads of their own, released at the same moment; their results in order."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(index, job):
        barrier.wait()
        try:
            results[index] = job()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below, with the others
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [result for result in results if isinstance(result, Exception)]
    assert errors == [], errors
    return results


def assert_invariants() -> None:
    assert ledger_problems() == []
    assert hold_problems() == []
    references = list(Transfer.objects.values_list("reference", flat=True))
    assert [ref for ref, n in Counter(references).items() if n > 1] == []
    call_command("ledger_check")


def bal(user):
    return {row["asset"]: (row["available"], row["locked"]) for row in balances_for_user(user=user)}


def test_many_connections_placing_and_canceling_at_once_accept_each_order_exactly_once(
    web_tier, shard_worker, market, funded
):
    traders = [funded(USD="1000000", BTC="1000") for _ in range(4)]
    connections = 8  # two per trader: the same trader's balance rows are fought over too
    statuses: list[Counter] = [Counter() for _ in range(connections)]
    accepted: list[dict[str, int]] = [{} for _ in range(connections)]

    def client_job(index: int):
        trader = traders[index % len(traders)]
        client = client_for(web_tier, trader)
        rng = random.Random(index)
        mine: list[int] = []

        def job():
            for step in range(40):
                if mine and rng.random() < 0.3:
                    response = client.delete(f"/orders/{rng.choice(mine)}")
                else:
                    coid = f"c{index}-{step}"
                    side = rng.choice(["buy", "sell"])
                    price = 100 + rng.randint(-3, 3) * (1 if side == "buy" else -1)
                    body = {"symbol": "BTC-USD", "side": side, "price": str(price), "quantity": "0.01"}
                    response = client.post("/orders", {**body, "client_order_id": coid})
                    if response.status_code == 201:
                        accepted[index][coid] = response.json()["id"]
                        mine.append(response.json()["id"])
                statuses[index][response.status_code] += 1
            client.close()

        return job

    run_together(*(client_job(i) for i in range(connections)))
    shard_worker.wait_idle()

    codes = sum(statuses, Counter())
    assert {code for code in codes if code >= 500} == set(), codes
    assert set(codes) <= {201, 202, 400}, codes  # 400: canceling an order that has already traded
    ids = [order_id for per_client in accepted for order_id in per_client.values()]
    assert len(ids) == len(set(ids)) == codes[201]
    assert sorted(Order.objects.values_list("id", flat=True)) == sorted(ids)
    for order in Order.objects.all():
        holds = Transfer.objects.filter(reference=f"order:{order.pk}:hold").count()
        assert holds == 1, f"order {order.pk} held {holds} times"
    assert Order.objects.filter(status="pending").count() == 0
    assert Trade.objects.exists()
    assert_invariants()


def test_the_same_client_order_id_from_several_connections_places_one_order(web_tier, shard_worker, market, funded):
    trader = funded(USD="100000")
    clients = [client_for(web_tier, trader) for _ in range(3)]
    for round_ in range(8):
        body = {
            "symbol": "BTC-USD",
            "side": "buy",
            "price": "90",
            "quantity": "0.5",
            "client_order_id": f"same-{round_}",
        }
        responses = run_together(*(lambda c=c, body=body: c.post("/orders", body) for c in clients))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 200, 201], [r.content for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        order_id = responses[0].json()["id"]
        assert Order.objects.filter(user=trader, client_order_id=f"same-{round_}").count() == 1
        assert Transfer.objects.filter(reference=f"order:{order_id}:hold").count() == 1
    shard_worker.wait_idle()
    # Eight orders of 45 USD each rest: held once each, never twice.
    assert bal(trader)["USD"] == (Decimal(100000 - 8 * 45), Decimal(8 * 45))
    # Sent again once the engine has it: still that order (now open), still one hold.
    again = clients[0].post(
        "/orders", {"symbol": "BTC-USD", "side": "buy", "price": "90", "quantity": "0.5", "client_order_id": "same-0"}
    )
    assert again.status_code == 200 and again.json()["status"] == "open"
    assert Order.objects.count() == 8
    assert_invariants()


def test_a_cancel_racing_a_fill_ends_filled_or_canceled_never_both_with_exact_money(
    web_tier, shard_worker, market, funded
):
    maker, taker = funded(BTC="10"), funded(USD="100000")
    maker_client, taker_client = client_for(web_tier, maker), client_for(web_tier, taker)
    outcomes = Counter()
    for round_ in range(12):
        ask = maker_client.post("/orders", {"symbol": "BTC-USD", "side": "sell", "price": "100", "quantity": "0.5"})
        assert ask.status_code == 201
        shard_worker.wait_idle()  # the ask rests before the race starts
        take = "0.5" if round_ % 2 else "0.2"  # a full fill, or a partial one the cancel may cut short
        ask_id = ask.json()["id"]
        cancel, buy = run_together(
            lambda ask_id=ask_id: maker_client.delete(f"/orders/{ask_id}"),
            lambda take=take: taker_client.post(
                "/orders",
                {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": take, "time_in_force": "IOC"},
            ),
        )
        assert cancel.status_code in (202, 400), cancel.content  # 400: it had filled already
        assert buy.status_code == 201, buy.content
        shard_worker.wait_idle()

        order = Order.objects.get(pk=ask_id)
        traded = sum(Trade.objects.filter(maker_order=order).values_list("quantity", flat=True), Decimal(0))
        assert order.filled_quantity == traded
        assert order.hold_remaining == 0
        if order.status == "filled":
            assert traded == order.quantity
        else:
            assert order.status == "canceled" and traded < order.quantity
            assert cancel.status_code == 202
        outcomes[(order.status, str(traded))] += 1
        assert Order.objects.get(pk=buy.json()["id"]).status in ("filled", "expired")

    # Money: exactly what the trades say, to the last unit.
    trades = list(Trade.objects.all())
    sold = sum((t.quantity for t in trades), Decimal(0))
    proceeds = sum((t.price * t.quantity - t.maker_fee for t in trades), Decimal(0))
    bought = sum((t.quantity - t.taker_fee for t in trades), Decimal(0))
    assert bal(maker) == {"BTC": (Decimal(10) - sold, Decimal(0)), "USD": (proceeds, Decimal(0))}
    assert bal(taker) == {"BTC": (bought, Decimal(0)), "USD": (Decimal(100000) - 100 * sold, Decimal(0))}
    assert sum(outcomes.values()) == 12
    assert_invariants()
