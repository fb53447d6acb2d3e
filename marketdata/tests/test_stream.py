"""/ws/stream against a real shard worker process: depth snapshot + changes equal REST depth; private channels need auth."""

import asyncio
import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from accounts.services import token_create
from exchange_site.asgi import application
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ORIGIN = [(b"origin", b"http://testserver")]


def api(user) -> APIClient:
    client = APIClient()
    _, key = token_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


async def receive_until(communicator, done, *, timeout: float = 60) -> list[dict]:
    """Every message up to the one after which ``done(messages)`` holds: waits on that event, never on a pause."""
    messages = []
    while not messages or not done(messages):
        messages.append(json.loads(await communicator.receive_from(timeout=timeout)))
    return messages


def subscribed(messages) -> bool:
    return messages[-1].get("type") == "subscribed"


def apply(book: dict[str, dict[Decimal, Decimal]], message: dict) -> None:
    for side in ("bids", "asks"):
        if message["type"] == "snapshot":
            book[side] = {}
        for price, quantity in message[side]:
            if Decimal(quantity) == 0:
                book[side].pop(Decimal(price), None)
            else:
                book[side][Decimal(price)] = Decimal(quantity)


def as_levels(levels) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in levels]


def test_depth_snapshot_plus_changes_equals_rest_depth_without_gaps(shard_worker, funded):
    MarketFactory()
    traders = [funded(USD="100000", BTC="100") for _ in range(3)]
    clients = [api(trader) for trader in traders]

    def burst():
        ids = []
        for n in range(60):
            side = "buy" if n % 2 else "sell"
            price = 100 + (n * 7) % 11 - 5 if side == "buy" else 100 + (n * 5) % 11 - 3
            response = clients[n % 3].post(
                "/api/v1/orders",
                {"symbol": "BTC-USD", "side": side, "price": str(price), "quantity": f"0.{n % 9 + 1}"},
                format="json",
            )
            assert response.status_code == 201, response.content
            ids.append((n % 3, response.json()["id"]))
        for trader, order_id in ids[::7]:
            clients[trader].delete(f"/api/v1/orders/{order_id}")
        shard_worker.wait_idle()
        # The marker: a bid at a price of its own, after every other order. Its depth update is the
        # last one the shard publishes; when it arrives, every update before it has arrived.
        response = clients[0].post(
            "/api/v1/orders", {"symbol": "BTC-USD", "side": "buy", "price": "50", "quantity": "0.1"}, format="json"
        )
        assert response.status_code == 201, response.content
        shard_worker.wait_idle()

    def marker_seen(messages) -> bool:
        return any(price == "50" for price, _ in messages[-1].get("bids", ()))

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/stream", headers=ORIGIN)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_json_to({"op": "subscribe", "channels": ["depth:BTC-USD"]})
        first = await receive_until(communicator, subscribed)
        await sync_to_async(burst, thread_sensitive=False)()
        rest = await receive_until(communicator, marker_seen)
        await communicator.disconnect()
        return first + rest

    messages = [m for m in asyncio.run(scenario()) if m.get("channel") == "depth:BTC-USD"]
    assert messages[0]["type"] == "snapshot"
    book: dict = {}
    sequence = None
    updates = 0
    for message in messages:
        if message["type"] == "update":
            assert message["sequence"] == sequence + 1, "a gap in the depth sequence"
            updates += 1
        sequence = message["sequence"]
        apply(book, message)
    assert updates > 10
    depth = APIClient().get("/api/v1/markets/BTC-USD/depth").json()
    assert depth["sequence"] == sequence
    assert sorted(book["bids"].items(), reverse=True) == as_levels(depth["bids"])
    assert sorted(book["asks"].items()) == as_levels(depth["asks"])
    assert depth["bids"] and depth["asks"]


def test_private_channels_without_auth_are_refused(db):
    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/stream", headers=ORIGIN)
        await communicator.connect()
        await communicator.send_json_to({"op": "subscribe", "channels": ["orders", "fills", "balances"]})
        messages = await receive_until(communicator, subscribed)
        await communicator.disconnect()
        return messages

    messages = asyncio.run(scenario())
    errors = {m["channel"]: m["code"] for m in messages if m.get("type") == "error"}
    assert errors == {"orders": "auth_required", "fills": "auth_required", "balances": "auth_required"}
    assert [m for m in messages if m.get("type") == "subscribed"][-1]["channels"] == []


def test_private_channels_carry_only_the_token_owners_fills(shard_worker, funded):
    MarketFactory()
    seller, buyer = funded(BTC="1"), funded(USD="1000")
    _, key = token_create(user=buyer)

    def trade():
        api(seller).post(
            "/api/v1/orders", {"symbol": "BTC-USD", "side": "sell", "price": "100", "quantity": "0.5"}, format="json"
        )
        shard_worker.wait_idle()
        api(buyer).post(
            "/api/v1/orders", {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.5"}, format="json"
        )
        shard_worker.wait_idle()

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/stream?token={key}", headers=ORIGIN)
        await communicator.connect()
        await communicator.send_json_to({"op": "subscribe", "channels": ["fills", "balances"]})
        await receive_until(communicator, subscribed)
        await sync_to_async(trade, thread_sensitive=False)()

        def bought(messages) -> bool:  # the batch of the trade: its fills, then the balances after it
            last = messages[-1]
            return (
                last.get("channel") == "balances"
                and {"asset": "BTC", "available": "0.499", "locked": "0"} in last["data"]
            )

        messages = await receive_until(communicator, bought)
        await communicator.disconnect()
        return messages

    messages = asyncio.run(scenario())
    fills = [fill for m in messages if m.get("channel") == "fills" for fill in m["data"]]
    assert [(f["side"], f["price"], f["quantity"], f["liquidity"]) for f in fills] == [("buy", "100", "0.5", "taker")]
    balances = [m["data"] for m in messages if m.get("channel") == "balances"]
    assert balances and {"asset": "BTC", "available": "0.499", "locked": "0"} in balances[-1]
