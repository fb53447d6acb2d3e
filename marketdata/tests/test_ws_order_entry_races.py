"""Websocket order entry (`op: place` / `op: cancel`) racing itself and the REST API, through real servers.

Two daphne processes on one socket; each client is a real websocket or HTTP connection. Skipped
only while the server does not know the op (it answers an error without the request's ``id``).
"""

import asyncio
import json
from decimal import Decimal

import aiohttp
import pytest

from accounts.services import token_create
from exchange_site.testing import HttpClient
from ledger.models import Transfer
from ledger.selectors import ledger_problems
from orders.models import Order, Trade
from orders.selectors import hold_problems
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def ws_url(web_tier, key: str) -> str:
    return web_tier.url.replace("http://", "ws://") + f"/ws/stream?token={key}"


async def answer_to(ws, request_id: str, timeout: float = 60) -> dict:
    """The server's answer to our request ``request_id``; other messages (events) are passed over."""
    while True:
        message = await ws.receive(timeout=timeout)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        data = json.loads(message.data)
        if data.get("id") == request_id:
            return data
        if data.get("type") == "error" and "id" not in data:
            pytest.skip(f"the websocket does not know op place/cancel in this build: {data}")


def body(coid: str) -> dict:
    return {"symbol": "BTC-USD", "side": "buy", "price": "90", "quantity": "0.5", "client_order_id": coid}


def test_the_same_client_order_id_over_two_sockets_and_rest_places_one_order(web_tier, funded):
    MarketFactory()
    trader = funded(USD="100000")
    keys = [token_create(user=trader)[1] for _ in range(3)]
    rest = HttpClient(web_tier.url, keys[2])
    origin = {"Origin": web_tier.url}

    async def scenario():
        async with aiohttp.ClientSession() as http:
            sockets = [await http.ws_connect(ws_url(web_tier, key), headers=origin) for key in keys[:2]]
            outcomes = []
            for round_ in range(6):
                coid = f"ws-{round_}"

                async def over_socket(ws, n, coid=coid):
                    await ws.send_json({"op": "place", "id": f"r{n}", "order": body(coid)})
                    answer = await answer_to(ws, f"r{n}")
                    return answer.get("status"), answer.get("order", {}).get("id"), answer

                def over_rest(coid=coid):
                    response = rest.post("/orders", body(coid))
                    return response.status_code, response.json().get("id"), response.json()

                outcomes.append(
                    await asyncio.gather(
                        over_socket(sockets[0], 1), over_socket(sockets[1], 2), asyncio.to_thread(over_rest)
                    )
                )
            for ws in sockets:
                await ws.close()
            return outcomes

    try:
        outcomes = asyncio.run(scenario())
    finally:
        rest.close()
    for round_, answers in enumerate(outcomes):
        assert sorted(status for status, _, _ in answers) == [200, 200, 201], answers
        assert len({order_id for _, order_id, _ in answers}) == 1, answers
        order_id = answers[0][1]
        assert Order.objects.filter(user=trader, client_order_id=f"ws-{round_}").count() == 1
        assert Transfer.objects.filter(reference=f"order:{order_id}:hold").count() == 1
    assert ledger_problems() == [] and hold_problems() == []


def test_a_websocket_cancel_racing_a_rest_fill_cancels_once_with_exact_holds(web_tier, shard_worker, funded):
    MarketFactory()
    maker, taker = funded(BTC="5"), funded(USD="100000")
    maker_key = token_create(user=maker)[1]
    maker_rest, taker_rest = HttpClient(web_tier.url, maker_key), HttpClient(web_tier.url, token_create(user=taker)[1])

    async def scenario():
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(ws_url(web_tier, maker_key), headers={"Origin": web_tier.url})
            asks = []
            for round_ in range(6):
                ask = await asyncio.to_thread(
                    maker_rest.post, "/orders", {"symbol": "BTC-USD", "side": "sell", "price": "100", "quantity": "0.5"}
                )
                await asyncio.to_thread(shard_worker.wait_idle)
                ask_id = ask.json()["id"]

                async def cancel(ask_id=ask_id, round_=round_):
                    await ws.send_json({"op": "cancel", "id": f"c{round_}", "order_id": ask_id})
                    return await answer_to(ws, f"c{round_}")

                buy = {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.3", "time_in_force": "IOC"}
                answer, bought = await asyncio.gather(cancel(), asyncio.to_thread(taker_rest.post, "/orders", buy))
                assert bought.status_code == 201
                assert answer["type"] == "cancel_requested", answer
                asks.append(ask_id)
            await ws.close()
            await asyncio.to_thread(shard_worker.wait_idle)
            return asks

    try:
        asks = asyncio.run(scenario())
    finally:
        maker_rest.close()
        taker_rest.close()
    # The fill of 0.3 never completes an ask of 0.5: whichever came first, the cancel ends it, once.
    for order in Order.objects.filter(pk__in=asks):
        traded = sum(Trade.objects.filter(maker_order=order).values_list("quantity", flat=True), Decimal(0))
        assert (order.status, order.hold_remaining) == ("canceled", 0)
        assert order.filled_quantity == traded and traded in (Decimal(0), Decimal("0.3"))
    assert ledger_problems() == [] and hold_problems() == []


def test_a_token_client_without_an_origin_header_is_accepted(web_tier, funded):
    key = token_create(user=funded(USD="10"))[1]

    async def scenario():
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(ws_url(web_tier, key))
            await ws.send_json({"op": "ping"})
            message = await ws.receive(timeout=30)
            await ws.close()
            return json.loads(message.data)

    assert asyncio.run(scenario()) == {"type": "pong"}
