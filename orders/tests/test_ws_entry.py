"""Order entry on /ws/stream: place and cancel ops, their answers, and who may open the socket."""

import asyncio
import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.services import token_create, token_revoke
from exchange_site import redis as redis_
from exchange_site.asgi import application
from ledger.selectors import balances_for_user
from matching.queue import queue_key
from orders.models import Order

from .factories import MarketFactory

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED_ORIGIN = (b"origin", b"http://testserver")
FOREIGN_ORIGIN = (b"origin", b"http://evil.example")


@pytest.fixture
def trader(funded):
    MarketFactory()
    return funded(USD="1000", BTC="2")


def queued() -> list[bytes]:
    return redis_.client().lrange(queue_key(0), 0, -1)


def usd(user):
    return next((row["available"], row["locked"]) for row in balances_for_user(user=user) if row["asset"] == "USD")


async def open_socket(path, headers=()):
    communicator = WebsocketCommunicator(application, path, headers=list(headers))
    connected, code = await communicator.connect()
    return communicator, connected


async def answers(communicator, count: int) -> list[dict]:
    return [json.loads(await communicator.receive_from(timeout=10)) for _ in range(count)]


def test_place_and_cancel_over_the_socket_answer_by_id(trader):
    _, key = token_create(user=trader)
    order = {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "1"}

    async def scenario():
        communicator, connected = await open_socket(f"/ws/stream?token={key}")
        assert connected
        # Sent back to back: placed together, answered one by one in order.
        await communicator.send_json_to({"op": "place", "id": "r1", "order": {**order, "client_order_id": "w1"}})
        await communicator.send_json_to({"op": "place", "id": "r2", "order": {**order, "price": 100.0}})
        await communicator.send_json_to({"op": "place", "id": "r3", "order": {**order, "quantity": "20"}})
        await communicator.send_json_to({"op": "place", "id": "r4", "order": {**order, "client_order_id": "w1"}})
        first = await answers(communicator, 4)
        await communicator.send_json_to({"op": "cancel", "id": "c1", "order_id": first[0]["order"]["id"]})
        await communicator.send_json_to({"op": "cancel", "id": "c2", "order_id": 999999})
        await communicator.send_json_to({"op": "cancel", "id": "c3", "order_id": "1"})
        second = await answers(communicator, 3)
        await communicator.disconnect()
        return first, second

    (r1, r2, r3, r4), (c1, c2, c3) = asyncio.run(scenario())
    assert (r1["type"], r1["id"], r1["status"], r1["order"]["status"]) == ("placed", "r1", 201, "pending")
    assert (r2["type"], r2["id"], r2["code"], list(r2["fields"])) == ("error", "r2", "invalid", ["price"])
    assert (r3["type"], r3["id"], r3["code"]) == ("error", "r3", "insufficient_funds")
    assert (r4["type"], r4["status"], r4["order"]["id"]) == ("placed", 200, r1["order"]["id"])
    assert (c1["type"], c1["id"], c1["order"]["id"]) == ("cancel_requested", "c1", r1["order"]["id"])
    assert (c2["type"], c2["id"], c2["code"]) == ("error", "c2", "order_not_found")
    assert (c3["type"], c3["code"]) == ("error", "invalid")
    assert Order.objects.count() == 1
    assert usd(trader) == (Decimal("900"), Decimal("100"))
    # r4 queues the order again when it reached the server in a batch of its own (a replay).
    *places, cancel = queued()
    assert set(places) == {f"n:{r1['order']['id']}".encode()} and cancel == f"c:{r1['order']['id']}".encode()


def test_placing_needs_a_signed_in_socket(trader):
    async def scenario():
        communicator, connected = await open_socket("/ws/stream", [ALLOWED_ORIGIN])
        assert connected
        await communicator.send_json_to({"op": "place", "id": 7, "order": {"symbol": "BTC-USD"}})
        (answer,) = await answers(communicator, 1)
        await communicator.disconnect()
        return answer

    answer = asyncio.run(scenario())
    assert (answer["type"], answer["id"], answer["code"]) == ("error", 7, "auth_required")
    assert queued() == []


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def test_who_may_open_the_socket(trader):
    _, key = token_create(user=trader)
    cookie = (b"cookie", session_cookie(trader))

    async def scenario():
        outcomes = {}
        for name, path, headers in [
            ("token without origin", f"/ws/stream?token={key}", []),
            ("session from the site", "/ws/stream", [ALLOWED_ORIGIN, cookie]),
            ("session from a foreign origin", "/ws/stream", [FOREIGN_ORIGIN, cookie]),
            ("token from a foreign origin", f"/ws/stream?token={key}", [FOREIGN_ORIGIN]),
            ("session without origin", "/ws/stream", [cookie]),
            ("bad token without origin", "/ws/stream?token=nope", []),
        ]:
            communicator, connected = await open_socket(path, headers)
            outcomes[name] = connected
            if connected:
                await communicator.disconnect()
        return outcomes

    assert asyncio.run(scenario()) == {
        "token without origin": True,
        "session from the site": True,
        "session from a foreign origin": False,
        "token from a foreign origin": False,
        "session without origin": False,
        "bad token without origin": False,
    }


def test_a_session_socket_from_the_site_places_orders(trader):
    cookie = (b"cookie", session_cookie(trader))

    async def scenario():
        communicator, connected = await open_socket("/ws/stream", [ALLOWED_ORIGIN, cookie])
        assert connected
        order = {"symbol": "BTC-USD", "side": "sell", "price": "100", "quantity": "0.5"}
        await communicator.send_json_to({"op": "place", "id": "s1", "order": order})
        (answer,) = await answers(communicator, 1)
        await communicator.disconnect()
        return answer

    answer = asyncio.run(scenario())
    assert (answer["type"], answer["status"], answer["order"]["side"]) == ("placed", 201, "sell")


def test_revoking_a_token_closes_the_sockets_opened_with_it(trader):
    token, key = token_create(user=trader)
    _, other_key = token_create(user=trader)

    async def scenario():
        revoked, connected = await open_socket(f"/ws/stream?token={key}")
        assert connected
        kept, connected = await open_socket(f"/ws/stream?token={other_key}")
        assert connected
        await sync_to_async(token_revoke, thread_sensitive=False)(user=trader, token_id=token.pk)
        closed = await revoked.receive_output(timeout=10)
        await kept.send_json_to({"op": "ping"})
        pong = await kept.receive_json_from(timeout=10)
        await kept.disconnect()
        reopened, connected_again = await open_socket(f"/ws/stream?token={key}")
        return closed, pong, connected_again

    closed, pong, connected_again = asyncio.run(scenario())
    assert closed == {"type": "websocket.close", "code": 4001}
    assert pong == {"type": "pong"}
    assert connected_again is False
