"""End to end through the real API, Redis and a shard worker process; crash and Redis-loss recovery."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.services import token_create
from ledger.models import Transfer
from ledger.selectors import balances_for_user
from matching.engine import OrderBook
from orders.models import Market, Order, Trade
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def api(user) -> APIClient:
    client = APIClient()
    _, key = token_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def bal(user):
    return {row["asset"]: (row["available"], row["locked"]) for row in balances_for_user(user=user)}


@pytest.fixture
def market(db):
    return MarketFactory(maker_fee=Decimal("0.001"), taker_fee=Decimal("0.002"))


def test_two_traders_cross_through_the_api_and_a_worker_process(shard_worker, market, funded):
    seller, buyer = funded(BTC="1"), funded(USD="10000")
    sell = api(seller).post(
        "/api/v1/orders", {"symbol": "BTC-USD", "side": "sell", "price": "2500", "quantity": "0.4"}, format="json"
    )
    assert sell.status_code == 201
    shard_worker.wait_idle()
    buy = api(buyer).post(
        "/api/v1/orders", {"symbol": "BTC-USD", "side": "buy", "price": "2600", "quantity": "0.4"}, format="json"
    )
    assert buy.status_code == 201
    shard_worker.wait_idle()

    fills = api(buyer).get("/api/v1/fills", {"symbol": "BTC-USD"}).json()
    assert [(f["side"], f["price"], f["quantity"], f["fee"], f["fee_asset"], f["liquidity"]) for f in fills] == [
        ("buy", "2500", "0.4", "0.0008", "BTC", "taker")
    ]
    seller_fills = api(seller).get("/api/v1/fills").json()
    assert [(f["side"], f["fee"], f["fee_asset"], f["liquidity"]) for f in seller_fills] == [
        ("sell", "1", "USD", "maker")
    ]
    order = api(buyer).get(f"/api/v1/orders/{buy.json()['id']}").json()
    assert (order["status"], order["filled_quantity"], order["average_price"]) == ("filled", "0.4", "2500")
    assert order["fills"][0]["order_id"] == order["id"]
    # 0.4 x 2500 = 1000 USD; buyer pays 0.2% of 0.4 BTC, seller 0.1% of 1000 USD; 40 USD of price improvement released.
    assert bal(buyer) == {"BTC": (Decimal("0.3992"), Decimal(0)), "USD": (Decimal("9000"), Decimal(0))}
    assert bal(seller) == {"BTC": (Decimal("0.6"), Decimal(0)), "USD": (Decimal("999"), Decimal(0))}
    call_command("ledger_check")


def book_of_database(market) -> list[tuple]:
    """The book a worker would rebuild: resting orders in priority order."""
    book = OrderBook(market.symbol)
    for order in Order.objects.filter(market=market, status__in=["open", "partially_filled"]).order_by("sequence"):
        book.restore(
            order_id=order.pk,
            owner=order.user_id,
            side=order.side,
            price=int(order.price / market.tick_size),
            remaining=int((order.quantity - order.filled_quantity) / market.lot_size),
        )
    return book.resting_orders()


def scripted_orders(traders):
    """A fixed stream of crossing and resting orders and cancels, from several traders."""
    steps = []
    for i in range(120):
        trader = traders[i % len(traders)]
        side = "buy" if (i * 7) % 3 else "sell"
        price = 100 + ((i * 13) % 9) - 4
        steps.append(
            ("place", trader, {"symbol": "BTC-USD", "side": side, "price": f"{price}", "quantity": f"0.{(i % 5) + 1}"})
        )
        if i % 10 == 9:
            steps.append(("cancel", trader, None))
    return steps


def run_script(steps, clients, on_step=None) -> None:
    last = {}
    for n, (kind, trader, body) in enumerate(steps):
        client = clients[trader.pk]
        if kind == "place":
            response = client.post("/api/v1/orders", body, format="json")
            assert response.status_code == 201, response.content
            last[trader.pk] = response.json()["id"]
        else:
            client.delete(f"/api/v1/orders/{last[trader.pk]}")
        if on_step:
            on_step(n)


def outcome(market):
    trades = list(
        Trade.objects.filter(market=market)
        .order_by("sequence")
        .values_list("sequence", "maker_order_id", "taker_order_id", "price", "quantity")
    )
    orders = list(
        Order.objects.filter(market=market)
        .order_by("id")
        .values_list("id", "status", "filled_quantity", "hold_remaining")
    )
    return trades, orders, book_of_database(market)


@pytest.mark.parametrize("lose_redis", [False, True], ids=["sigkill", "sigkill-and-redis-flushed"])
def test_sigkill_while_settling_loses_nothing_and_duplicates_nothing(request, market, funded, lose_redis):
    # Losing Redis is a real FLUSHALL, so on a redis-server of this test's own, never the shared one.
    redis_server = request.getfixturevalue("private_redis") if lose_redis else None
    shard_worker = request.getfixturevalue("shard_worker")
    traders = [funded(USD="100000", BTC="100") for _ in range(3)]
    clients = {trader.pk: api(trader) for trader in traders}
    steps = scripted_orders(traders)

    def crash(n):
        if n in (30, 75):
            shard_worker.kill()
        if n in (45, 95):
            if lose_redis:  # everything queued while the worker was down is gone, and every other key
                redis_server.flush()
            shard_worker.start()

    run_script(steps, clients, on_step=crash)
    shard_worker.wait_idle(timeout=90)
    crashed = outcome(market)
    accepted = Order.objects.filter(market=market).count()
    assert accepted == sum(1 for kind, *_ in steps if kind == "place")
    assert Order.objects.filter(status="pending").count() == 0
    references = list(Transfer.objects.values_list("reference", flat=True))
    assert len(references) == len(set(references))
    call_command("ledger_check")

    # The same orders in the same order, against a worker that never dies, on a fresh market.
    shard_worker.stop()
    Market.objects.filter(pk=market.pk).update(symbol="OLD-USD", shard=9)
    reference_market = MarketFactory(maker_fee=Decimal("0.001"), taker_fee=Decimal("0.002"))
    shard_worker.start()
    run_script(steps, clients)
    shard_worker.wait_idle(timeout=90)
    calm = outcome(reference_market)

    def shape(result, first_order_id):
        trades, orders, book = result
        offset = lambda order_id: order_id - first_order_id  # noqa: E731 - ids differ between the two runs
        return (
            [(seq, offset(m), offset(t), p, q) for seq, m, t, p, q in trades],
            [(offset(i), s, f, h) for i, s, f, h in orders],
            [(offset(o), owner, side, price, rem) for o, owner, side, price, rem in book],
        )

    crashed_shape, calm_shape = shape(crashed, crashed[1][0][0]), shape(calm, calm[1][0][0])
    for name, got, expected in zip(("trades", "orders", "book"), crashed_shape, calm_shape, strict=True):
        first_difference = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), None)
        assert got == expected, (
            f"{name} differ first at {first_difference}: {got[first_difference or 0 :][:3]} vs {expected[first_difference or 0 :][:3]}"
        )
    call_command("ledger_check")
