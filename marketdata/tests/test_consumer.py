"""The /ws/stream consumer fed by batch_publish directly (no shard worker): gaps, candles, ticker, privacy."""

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import token_create
from accounts.tests.factories import UserFactory
from exchange_site import redis as redis_
from exchange_site.asgi import application
from marketdata.groups import depth_keys
from marketdata.publish import batch_publish, depth_reset
from marketdata.selectors import depth_get
from orders.models import Order, Trade
from orders.serializers import trade_public_data
from orders.tests.factories import MarketFactory

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


async def connect(path="/ws/stream", headers=()):
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN, *headers])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def send(communicator, op, *channels):
    await communicator.send_json_to({"op": op, "channels": list(channels)})


async def receive_until(communicator, done, *, timeout: float = 30) -> list[dict]:
    """Every message up to the one after which ``done(messages)`` holds: waits on that event, never on a pause."""
    messages = []
    while not messages or not done(messages):
        messages.append(json.loads(await communicator.receive_from(timeout=timeout)))
    return messages


def answered(kind: str):
    """Done at the server's answer to our last op: "subscribed", "unsubscribed" or "error"."""
    return lambda messages: messages[-1].get("type") == kind and messages[-1].get("channel") is None


def on(channel: str):
    return lambda messages: messages[-1].get("channel") == channel


async def before_marker(communicator, channel: str = "trades:BTC-USD") -> list[dict]:
    """Every message up to a marker batch published on ``channel`` after the batches under test.

    The layer delivers to one consumer in publishing order, so what the batches before the marker
    sent has arrived when the marker does: whatever is not in the list was not sent.
    """
    await publish(trades={channel.split(":")[1]: [{"id": 0, "marker": True}]})
    messages = await receive_until(communicator, on(channel))
    assert messages[-1]["data"] == [{"id": 0, "marker": True}]
    return messages[:-1]


def publish(**batch):
    batch = {"depth_changes": {}, "trades": {}, "orders": {}, "fills": {}, "balance_users": set(), **batch}
    return sync_to_async(batch_publish, thread_sensitive=False)(**batch)


class Trades:
    """Trade rows as the shard worker settles them, numbered per market."""

    def __init__(self, market):
        self.market = market
        self.maker, self.taker = UserFactory(), UserFactory()
        self.sequence = 0

        def order(user, side):
            return Order.objects.create(
                user=user, market=market, side=side, type="limit", price=1, quantity=1, status="filled"
            )

        self.buy, self.sell = order(self.maker, "buy"), order(self.taker, "sell")

    def add(self, price, quantity, *, at=None, taker_side="sell") -> Trade:
        self.sequence += 1
        return Trade.objects.create(
            market=self.market,
            sequence=self.sequence,
            maker_order=self.buy,
            taker_order=self.sell,
            maker_user=self.maker,
            taker_user=self.taker,
            taker_side=taker_side,
            price=Decimal(price),
            quantity=Decimal(quantity),
            created_at=at or timezone.now(),
        )


def test_a_lost_depth_message_is_healed_with_a_fresh_snapshot():
    MarketFactory()
    depth_reset(symbol="BTC-USD", bids=[("100", "1")], asks=[("101", "1")])

    async def scenario():
        ws = await connect()
        await send(ws, "subscribe", "depth:BTC-USD")
        (snapshot, ack) = await receive_until(ws, answered("subscribed"))
        await publish(depth_changes={"BTC-USD": {"bids": [("99", "2")], "asks": []}})
        (update,) = await receive_until(ws, on("depth:BTC-USD"))
        # A batch whose message never arrived: the stored book moved on without us.
        bids_key, _, seq_key = depth_keys("BTC-USD")
        redis_.client().hset(bids_key, "98", "3")
        redis_.client().incr(seq_key)
        await publish(depth_changes={"BTC-USD": {"bids": [], "asks": [("102", "5")]}})
        (healed,) = await receive_until(ws, on("depth:BTC-USD"))
        await ws.disconnect()
        return snapshot, ack, update, healed

    snapshot, ack, update, healed = asyncio.run(scenario())
    assert (snapshot["type"], snapshot["bids"], snapshot["asks"]) == ("snapshot", [["100", "1"]], [["101", "1"]])
    assert ack == {"type": "subscribed", "channels": ["depth:BTC-USD"]}
    assert (update["type"], update["sequence"], update["bids"]) == ("update", snapshot["sequence"] + 1, [["99", "2"]])
    assert healed["type"] == "snapshot" and healed["sequence"] == snapshot["sequence"] + 3
    assert {key: healed[key] for key in ("symbol", "sequence", "bids", "asks")} == depth_get(symbol="BTC-USD")


def test_live_trades_candles_and_ticker_end_equal_to_rest():
    market = MarketFactory()
    trades = Trades(market)
    now = timezone.now()
    trades.add("100", "1", at=now - timedelta(minutes=3))
    trades.add("104", "2", at=now - timedelta(seconds=1))
    client = APIClient()

    async def scenario():
        ws = await connect()
        await send(ws, "subscribe", "trades:BTC-USD", "candles:BTC-USD:1m", "candles:BTC-USD:1h", "ticker:BTC-USD")
        before = await receive_until(ws, answered("subscribed"))
        new = await sync_to_async(lambda: [trades.add("103", "0.5"), trades.add("107", "0.25", taker_side="buy")])()
        await publish(trades={"BTC-USD": [trade_public_data(t) for t in new]})

        def everything_arrived(messages):  # the trades, both candles, and the ticker (within a second)
            seen = {m.get("channel") for m in messages if m.get("type") == "update"}
            last_ticker = [m["data"]["last"] for m in messages if m.get("channel") == "ticker:BTC-USD"]
            return {"trades:BTC-USD", "candles:BTC-USD:1m", "candles:BTC-USD:1h"} <= seen and last_ticker[-1:] == [
                "107"
            ]

        after = await receive_until(ws, everything_arrived)
        await ws.disconnect()
        return before, after, new

    before, after, new = asyncio.run(scenario())
    by_channel = {}
    for message in before + after:
        by_channel.setdefault(message.get("channel"), []).append(message)
    snapshot_1m = by_channel["candles:BTC-USD:1m"][0]
    assert snapshot_1m["type"] == "snapshot"
    assert by_channel["trades:BTC-USD"] == [
        {
            "channel": "trades:BTC-USD",
            "type": "update",
            "symbol": "BTC-USD",
            "data": [trade_public_data(t) for t in new],
        }
    ]
    for interval in ("1m", "1h"):
        rest = client.get("/api/v1/markets/BTC-USD/candles", {"interval": interval, "limit": 2}).json()
        live = by_channel[f"candles:BTC-USD:{interval}"][-1]["data"][-1]
        assert live == rest[0], interval
    tickers = by_channel["ticker:BTC-USD"]
    assert tickers[0]["data"]["last"] == "104"
    assert tickers[-1]["data"] == client.get("/api/v1/markets/BTC-USD/ticker").json()
    assert tickers[-1]["data"]["last"] == "107"


def test_private_channels_use_the_connection_user_only():
    MarketFactory()
    alice, bob = UserFactory(), UserFactory()
    _, alice_key = token_create(user=alice)
    browser = Client()
    browser.force_login(bob)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"

    async def scenario():
        by_token = await connect(f"/ws/stream?token={alice_key}")
        by_session = await connect(headers=[(b"cookie", cookie.encode())])
        by_bad_token = await connect("/ws/stream?token=not-a-key")
        for ws in (by_token, by_session, by_bad_token):
            await send(ws, "subscribe", "orders", "fills")
        acks = [await receive_until(ws, answered("subscribed")) for ws in (by_token, by_session, by_bad_token)]
        for ws in (by_token, by_session, by_bad_token):  # the public channel of the marker batch
            await send(ws, "subscribe", "trades:BTC-USD")
            await receive_until(ws, answered("subscribed"))
        await publish(orders={alice.pk: [{"id": 1}], bob.pk: [{"id": 2}]}, fills={bob.pk: [{"id": 9}]})
        await publish(trades={"BTC-USD": [{"id": 0, "marker": True}]})
        got = [(await receive_until(ws, on("trades:BTC-USD")))[:-1] for ws in (by_token, by_session, by_bad_token)]
        for ws in (by_token, by_session, by_bad_token):
            await ws.disconnect()
        return acks, got

    acks, (alice_got, bob_got, anonymous_got) = asyncio.run(scenario())
    assert acks[0][-1] == acks[1][-1] == {"type": "subscribed", "channels": ["fills", "orders"]}
    assert [m["code"] for m in acks[2] if m["type"] == "error"] == ["auth_required", "auth_required"]
    assert alice_got == [{"channel": "orders", "type": "update", "data": [{"id": 1}]}]
    assert bob_got == [
        {"channel": "orders", "type": "update", "data": [{"id": 2}]},
        {"channel": "fills", "type": "update", "data": [{"id": 9}]},
    ]
    assert anonymous_got == []


def test_bad_subscriptions_are_refused_and_unsubscribe_stops_messages():
    MarketFactory()
    MarketFactory(symbol="ETH-USD")

    async def scenario():
        ws = await connect()
        await send(ws, "subscribe", "depth:NOPE-USD", "candles:BTC-USD:7m", "weather:BTC-USD", "trades:BTC-USD")
        refused = await receive_until(ws, answered("subscribed"))
        await send(ws, "unsubscribe", "trades:BTC-USD")
        left = await receive_until(ws, answered("unsubscribed"))
        await send(ws, "subscribe", "trades:ETH-USD")  # the channel of the marker batch
        await receive_until(ws, answered("subscribed"))
        await publish(trades={"BTC-USD": [{"id": 1, "price": "1", "quantity": "1"}]})
        after = await before_marker(ws, "trades:ETH-USD")
        await ws.send_to(text_data="not json at all")
        garbage = await receive_until(ws, answered("error"))
        await ws.disconnect()
        return refused, left, after, garbage

    refused, left, after, garbage = asyncio.run(scenario())
    assert [(m["code"], m["channel"]) for m in refused if m["type"] == "error"] == [
        ("unknown_market", "depth:NOPE-USD"),
        ("invalid_interval", "candles:BTC-USD:7m"),
        ("unknown_channel", "weather:BTC-USD"),
    ]
    assert refused[-1] == {"type": "subscribed", "channels": ["trades:BTC-USD"]}
    assert left == [{"type": "unsubscribed", "channels": []}]
    assert after == []
    assert garbage[0]["type"] == "error"


def test_a_user_counts_as_streaming_while_any_of_their_private_streams_is_open():
    from marketdata.presence import users_streaming

    alice, bob = UserFactory(), UserFactory()
    _, alice_key = token_create(user=alice)

    def streaming():
        return sync_to_async(users_streaming, thread_sensitive=False)(user_ids=[alice.pk, bob.pk])

    async def scenario():
        seen = []
        tab, other_tab = await connect(f"/ws/stream?token={alice_key}"), await connect(f"/ws/stream?token={alice_key}")
        await send(tab, "subscribe", "depth:NOPE")  # public only: not counted
        await receive_until(tab, answered("subscribed"))
        seen.append(await streaming())
        for ws in (tab, other_tab):
            await send(ws, "subscribe", "orders", "balances")
            await receive_until(ws, answered("subscribed"))
        seen.append(await streaming())
        await send(tab, "unsubscribe", "orders")  # still on balances: still counted
        await receive_until(tab, answered("unsubscribed"))
        seen.append(await streaming())
        await send(tab, "unsubscribe", "balances")
        await receive_until(tab, answered("unsubscribed"))
        seen.append(await streaming())
        await other_tab.disconnect()
        seen.append(await streaming())
        await tab.disconnect()
        return seen

    assert asyncio.run(scenario()) == [set(), {alice.pk}, {alice.pk}, {alice.pk}, set()]
