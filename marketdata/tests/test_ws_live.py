"""/ws/stream privacy through real servers: two daphne processes on one socket, the real shard, real trades.

Each client is a real websocket connection (aiohttp), so the sockets may land on different server
processes and every private event crosses the channel layer in Redis, as in production.
"""

import asyncio
import json
from decimal import Decimal

import aiohttp
import pytest
from django.conf import settings
from django.test import Client

from accounts.services import token_create, token_revoke
from exchange_site.testing import HttpClient
from orders.models import Order
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PRIVATE = ("orders", "fills", "balances")
CHANNELS = [*PRIVATE, "trades:BTC-USD", "depth:BTC-USD"]


def ws_url(web_tier, query: str = "") -> str:
    return web_tier.url.replace("http://", "ws://") + "/ws/stream" + query


def session_cookie(user) -> str:
    browser = Client()
    browser.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"


async def next_message(ws, timeout: float = 60) -> dict | None:
    """The next JSON message, or None once the server has closed the socket."""
    message = await ws.receive(timeout=timeout)
    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
        return None
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def receive_until(ws, done, timeout: float = 60) -> list[dict]:
    messages = []
    while not messages or not done(messages):
        message = await next_message(ws, timeout)
        assert message is not None, f"socket closed after {messages}"
        messages.append(message)
    return messages


def subscribed(messages) -> bool:
    return messages[-1].get("type") == "subscribed"


def marker_seen(messages) -> bool:
    """The depth update of the marker bid at 50, placed after everything under test."""
    last = messages[-1]
    return last.get("channel") == "depth:BTC-USD" and any(price == "50" for price, _ in last.get("bids", ()))


def test_each_socket_gets_only_its_own_orders_fills_and_balances(web_tier, shard_worker, funded):
    MarketFactory(maker_fee=Decimal("0.001"), taker_fee=Decimal("0.002"))
    alice, bob, carol = funded(BTC="1"), funded(USD="1000"), funded(USD="1000")
    _, alice_key = token_create(user=alice)
    bob_cookie = session_cookie(bob)
    rest = {user.pk: HttpClient(web_tier.url, token_create(user=user)[1]) for user in (alice, bob, carol)}
    origin = {"Origin": web_tier.url}

    def trade():
        ask = rest[alice.pk].post("/orders", {"symbol": "BTC-USD", "side": "sell", "price": "100", "quantity": "0.5"})
        shard_worker.wait_idle()
        bid = rest[bob.pk].post("/orders", {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.3"})
        shard_worker.wait_idle()
        assert rest[alice.pk].delete(f"/orders/{ask.json()['id']}").status_code == 202
        shard_worker.wait_idle()
        # The marker: carol's bid at a price of its own, the last batch the shard publishes.
        rest[carol.pk].post("/orders", {"symbol": "BTC-USD", "side": "buy", "price": "50", "quantity": "0.1"})
        shard_worker.wait_idle()
        return ask.json()["id"], bid.json()["id"]

    async def scenario():
        async with aiohttp.ClientSession() as http:
            sockets = {
                "alice": await http.ws_connect(ws_url(web_tier, f"?token={alice_key}"), headers=origin),
                "bob": await http.ws_connect(ws_url(web_tier), headers={**origin, "Cookie": bob_cookie}),
                "anonymous": await http.ws_connect(ws_url(web_tier), headers=origin),
            }
            acks = {}
            for name, ws in sockets.items():
                await ws.send_json({"op": "subscribe", "channels": CHANNELS})
                acks[name] = await receive_until(ws, subscribed)
            ids = await asyncio.to_thread(trade)
            got = {name: await receive_until(ws, marker_seen) for name, ws in sockets.items()}
            for ws in sockets.values():
                await ws.close()
            return acks, got, ids

    acks, got, (ask_id, bid_id) = asyncio.run(scenario())
    for client in rest.values():
        client.close()

    assert acks["alice"][-1]["channels"] == acks["bob"][-1]["channels"] == sorted(CHANNELS)
    anonymous_errors = {m["channel"]: m["code"] for m in acks["anonymous"] if m.get("type") == "error"}
    assert anonymous_errors == dict.fromkeys(PRIVATE, "auth_required")
    assert acks["anonymous"][-1]["channels"] == ["depth:BTC-USD", "trades:BTC-USD"]

    def private(name, channel):
        return [item for m in got[name] if m.get("channel") == channel for item in m["data"]]

    owners = dict(Order.objects.values_list("id", "user_id"))
    for name, user, order_id, side, liquidity in (
        ("alice", alice, ask_id, "sell", "maker"),
        ("bob", bob, bid_id, "buy", "taker"),
    ):
        orders = private(name, "orders")
        assert orders and {owners[o["id"]] for o in orders} == {user.pk}, name
        fills = private(name, "fills")
        assert [(f["order_id"], f["side"], f["quantity"], f["liquidity"]) for f in fills] == [
            (order_id, side, "0.3", liquidity)
        ]
        balances = [m["data"] for m in got[name] if m.get("channel") == "balances"]
        assert balances[-1] == rest_balances(web_tier, user), name
    assert [o["status"] for o in private("alice", "orders")][-1] == "canceled"
    assert all(m.get("channel") in ("trades:BTC-USD", "depth:BTC-USD") for m in got["anonymous"])
    for name in got:  # the public trade reached everyone, once
        trades = [t for m in got[name] if m.get("channel") == "trades:BTC-USD" for t in m["data"]]
        assert [(t["price"], t["quantity"], t["taker_side"]) for t in trades] == [("100", "0.3", "buy")], name


def rest_balances(web_tier, user) -> list[dict]:
    client = HttpClient(web_tier.url, token_create(user=user)[1])
    try:
        return client.get("/balances").json()
    finally:
        client.close()


def test_a_session_from_a_foreign_origin_is_refused(web_tier, funded):
    cookie = session_cookie(funded(USD="10"))

    async def scenario():
        async with aiohttp.ClientSession() as http:
            same = await http.ws_connect(ws_url(web_tier), headers={"Origin": web_tier.url, "Cookie": cookie})
            await same.send_json({"op": "subscribe", "channels": ["orders"]})
            ack = await receive_until(same, subscribed)
            await same.close()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url(web_tier), headers={"Origin": "http://evil.example", "Cookie": cookie})
            return ack, refused.value.status

    ack, status = asyncio.run(scenario())
    assert ack[-1]["channels"] == ["orders"]
    assert status == 403


def test_a_revoked_token_closes_the_open_socket(web_tier, shard_worker, funded):
    MarketFactory()
    trader = funded(USD="1000")
    token, key = token_create(user=trader)
    other = HttpClient(web_tier.url, token_create(user=trader)[1])

    async def scenario():
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(ws_url(web_tier, f"?token={key}"), headers={"Origin": web_tier.url})
            await ws.send_json({"op": "subscribe", "channels": ["orders", "balances"]})
            await receive_until(ws, subscribed)
            await asyncio.to_thread(token_revoke, user=trader, token_id=token.pk)
            # Something for the socket to carry, in case the server looks only when it sends.
            await asyncio.to_thread(
                other.post, "/orders", {"symbol": "BTC-USD", "side": "buy", "price": "10", "quantity": "1"}
            )
            try:
                await ws.send_json({"op": "ping"})
            except aiohttp.ClientConnectionResetError:
                pass  # already closed by the server: what this test waits for
            while await next_message(ws, timeout=20) is not None:
                pass  # whatever was on its way; the socket must then be closed
            return ws.close_code

    try:
        code = asyncio.run(scenario())
    finally:
        other.close()
    # Closed on purpose: 1011 is the server failing (see the idle-socket test), not a revocation.
    assert code is not None and code != 1011


def test_an_idle_socket_stays_open(web_tier):
    async def scenario():
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(ws_url(web_tier), headers={"Origin": web_tier.url})
            await ws.send_json({"op": "ping"})
            first = await next_message(ws)
            # Nothing to wait on here: silence itself is the stimulus, a little longer than the
            # channel layer's 5 s blocking read.
            await asyncio.sleep(12)
            await ws.send_json({"op": "ping"})
            second = await next_message(ws)
            code = ws.close_code
            await ws.close()
            return first, second, code

    first, second, code = asyncio.run(scenario())
    assert (first, second, code) == ({"type": "pong"}, {"type": "pong"}, None)
