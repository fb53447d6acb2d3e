"""depth_reset and batch_publish against the real Redis (this run's prefix) and channel layer."""

import asyncio
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from ledger.services import asset_get_or_create, funds_deposit
from marketdata.groups import depth_group, depth_keys, trades_group, user_group
from marketdata.publish import batch_publish, depth_reset
from marketdata.selectors import depth_get


def listen(*groups: str) -> str:
    """A channel that is a member of the groups; plain (not "!") names are read straight from Redis."""
    layer = get_channel_layer()
    channel = f"md-test-{uuid.uuid4().hex}"
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)
    return channel


def drain(channel: str) -> list[dict]:
    """Every message sent to the channel so far: a marker sent now comes after them (one list, in order)."""
    layer = get_channel_layer()

    async def take():
        await layer.send(channel, {"type": "test.marker"})
        out = []
        while (message := await asyncio.wait_for(layer.receive(channel), timeout=30))["type"] != "test.marker":
            out.append(message)
        return out

    return async_to_sync(take)()


def strip(message: dict) -> dict:
    return {key: value for key, value in message.items() if not key.startswith("__")}


def test_depth_reset_replaces_the_book_and_bumps_the_sequence(settings):
    channel = listen(depth_group("BTC-USD"))
    first = depth_reset(symbol="BTC-USD", bids=[("99.50", "1.0"), ("100", "2")], asks=[("101.00", "3")])
    second = depth_reset(symbol="BTC-USD", bids=[("98", "1")], asks=[("102", "0")])
    assert second == first + 1
    assert depth_get(symbol="BTC-USD") == {"symbol": "BTC-USD", "sequence": second, "bids": [["98", "1"]], "asks": []}
    snapshots = [strip(m) for m in drain(channel)]
    assert snapshots == [
        {
            "type": "md.depth",
            "kind": "snapshot",
            "symbol": "BTC-USD",
            "sequence": first,
            "bids": [["100", "2"], ["99.5", "1"]],
            "asks": [["101", "3"]],
        },
        {
            "type": "md.depth",
            "kind": "snapshot",
            "symbol": "BTC-USD",
            "sequence": second,
            "bids": [["98", "1"]],
            "asks": [],
        },
    ]
    assert all(key.startswith(settings.REDIS_PREFIX + ":") for key in depth_keys("BTC-USD"))


def test_batch_publish_applies_changes_in_one_step_per_market_with_one_message_each():
    depth_reset(symbol="BTC-USD", bids=[("100", "1"), ("99", "2")], asks=[("101", "1")])
    base = depth_get(symbol="BTC-USD")["sequence"]
    btc, eth = listen(depth_group("BTC-USD"), trades_group("BTC-USD")), listen(depth_group("ETH-USD"))
    trade = {"id": 7, "price": "100", "quantity": "0.5", "taker_side": "sell", "created_at": "2026-01-01T00:00:00Z"}
    batch_publish(
        depth_changes={
            # "100.00" and "100" are one level; "0" removes it; the last change of a level wins.
            "BTC-USD": {"bids": [("100.00", "0.5"), ("99", "0"), ("98.10", "4")], "asks": [("101", "2"), ("101", "3")]},
            "ETH-USD": {"bids": [("10", "1")], "asks": []},
            "XRP-USD": {"bids": [], "asks": []},  # nothing changed: no message, no sequence
        },
        trades={"BTC-USD": [trade]},
        orders={},
        fills={},
        balance_users=set(),
    )
    book = depth_get(symbol="BTC-USD")
    assert book == {
        "symbol": "BTC-USD",
        "sequence": base + 1,
        "bids": [["100", "0.5"], ["98.1", "4"]],
        "asks": [["101", "3"]],
    }
    assert depth_get(symbol="ETH-USD")["sequence"] == 1
    assert depth_get(symbol="XRP-USD")["sequence"] == 0
    # One message per group; the groups are sent at once, so their order on this channel is not kept.
    messages = sorted((strip(m) for m in drain(btc)), key=lambda message: message["type"])
    assert messages == [
        {
            "type": "md.depth",
            "kind": "update",
            "symbol": "BTC-USD",
            "sequence": base + 1,
            "bids": [["100", "0.5"], ["99", "0"], ["98.1", "4"]],
            "asks": [["101", "3"]],
        },
        {"type": "md.trades", "symbol": "BTC-USD", "trades": [trade]},
    ]
    assert [m["sequence"] for m in drain(eth)] == [1]


@pytest.mark.django_db
def test_batch_publish_sends_each_user_one_message_with_orders_fills_and_fresh_balances(funded):
    alice, bob = funded(USD="100"), funded(BTC="2")
    funds_deposit(user=alice, asset=asset_get_or_create(code="BTC"), amount="0.25")
    to_alice, to_bob = listen(user_group(alice.pk)), listen(user_group(bob.pk))
    order = {"id": 1, "status": "open"}
    fill = {"id": 3, "order_id": 1}
    batch_publish(
        depth_changes={},
        trades={},
        orders={alice.pk: [order]},
        fills={alice.pk: [fill]},
        balance_users={alice.pk, bob.pk},
    )
    (for_alice,) = [strip(m) for m in drain(to_alice)]
    assert for_alice == {
        "type": "user.events",
        "orders": [order],
        "fills": [fill],
        "balances": [
            {"asset": "BTC", "available": "0.25", "locked": "0"},
            {"asset": "USD", "available": "100", "locked": "0"},
        ],
    }
    (for_bob,) = [strip(m) for m in drain(to_bob)]
    assert for_bob["orders"] == [] and for_bob["fills"] == []
    assert {"asset": "BTC", "available": "2", "locked": "0"} in for_bob["balances"]


def test_an_empty_batch_sends_nothing():
    channel = listen(depth_group("BTC-USD"), trades_group("BTC-USD"))
    batch_publish(depth_changes={}, trades={"BTC-USD": []}, orders={}, fills={}, balance_users=set())
    assert drain(channel) == []
