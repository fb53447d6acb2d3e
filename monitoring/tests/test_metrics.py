"""GET /metrics: Prometheus text whose figures move as orders go through the door and a real shard."""

import json
import time
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from accounts.services import token_create
from exchange_site import redis as redis_
from exchange_site.asgi import application
from matching.queue import CANCEL, queue_key
from monitoring.recorders import ledger_check_key
from orders.tests.factories import MarketFactory

pytestmark = pytest.mark.django_db(transaction=True)


def api(user) -> APIClient:
    client = APIClient()
    _, key = token_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def scrape() -> dict[tuple[str, tuple], float]:
    """Every sample of GET /metrics as {(name, sorted labels): value}; fails unless it parses."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def place(client, **fields):
    body = {"symbol": "BTC-USD", "side": "buy", "type": "limit", "price": "100", "quantity": "0.1", **fields}
    return client.post("/api/v1/orders", body, format="json")


@pytest.mark.slow
def test_figures_move_as_orders_flow_through_the_door_and_a_real_shard(shard_worker, funded):
    MarketFactory()
    buyer, seller = api(funded(USD="10000")), api(funded(BTC="10"))
    before = scrape()
    assert before[("exchange_orders_accepted_total", ())] == 0
    assert before[("exchange_shard_queue_depth", (("shard", "0"),))] == 0

    for n in range(5):
        assert place(buyer, price=str(100 + n)).status_code == 201
    assert place(seller, side="sell", price="100", quantity="0.3", client_order_id="s1").status_code == 201
    assert place(seller, side="sell", price="100", quantity="0.3", client_order_id="s1").status_code == 200
    assert place(buyer, price="100.001").status_code == 400
    assert place(buyer, price="100.001").status_code == 400
    assert place(buyer, quantity="1000000").status_code == 400
    shard_worker.wait_idle()

    # The shard records its figures after the commit, from its publishing thread: wait for them.
    deadline = time.monotonic() + 30
    while (after := scrape())[("exchange_shard_orders_processed_total", (("shard", "0"),))] < 6:
        assert time.monotonic() < deadline, after
        time.sleep(0.05)
    assert after[("exchange_orders_accepted_total", ())] == 6
    assert after[("exchange_orders_replayed_total", ())] == 1
    assert after[("exchange_orders_refused_total", (("reason", "invalid_price"),))] == 2
    assert after[("exchange_orders_refused_total", (("reason", "insufficient_funds"),))] == 1
    assert after[("exchange_shard_trades_processed_total", (("shard", "0"),))] == 3
    batches = after[("exchange_shard_batch_size_count", (("shard", "0"),))]
    assert batches >= 1
    assert after[("exchange_shard_batch_size_sum", (("shard", "0"),))] == 6
    assert after[("exchange_shard_batch_size_bucket", (("le", "+Inf"), ("shard", "0")))] == batches
    for name in ("match", "commit"):
        assert after[(f"exchange_shard_{name}_seconds_count", (("shard", "0"),))] == batches
        assert after[(f"exchange_shard_{name}_seconds_sum", (("shard", "0"),))] > 0


def test_queue_depth_websockets_and_the_last_ledger_check_are_reported(db):
    MarketFactory(shard=0)
    MarketFactory(symbol="ETH-USD", shard=3)
    redis_.client().rpush(queue_key(3), f"{CANCEL}:1", f"{CANCEL}:2")
    redis_.client().set(
        ledger_check_key(),
        json.dumps({"ok": False, "problems": ["a", "b"], "at": "2026-11-27T23:00:00Z", "seconds": 1.5}),
    )

    async def while_connected():
        communicator = WebsocketCommunicator(application, "/ws/stream", headers=[(b"origin", b"http://testserver")])
        assert (await communicator.connect())[0]
        samples = await sync_to_async(scrape)()
        await communicator.disconnect()
        return samples

    samples = async_to_sync(while_connected)()
    assert samples[("exchange_shard_queue_depth", (("shard", "3"),))] == 2
    assert samples[("exchange_shard_queue_depth", (("shard", "0"),))] == 0
    assert samples[("exchange_websocket_connections", ())] == 1
    assert samples[("exchange_ledger_check_ok", ())] == 0
    assert samples[("exchange_ledger_check_problems", ())] == 2
    assert samples[("exchange_ledger_check_seconds", ())] == 1.5
    assert (
        samples[("exchange_ledger_check_timestamp_seconds", ())] == datetime(2026, 11, 27, 23, tzinfo=UTC).timestamp()
    )
    assert scrape()[("exchange_websocket_connections", ())] == 0


def test_metrics_can_be_closed_to_all_but_staff_and_loopback(db, settings, user):
    settings.METRICS_PUBLIC = False
    assert Client(REMOTE_ADDR="10.0.0.9").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    user.is_staff = True
    user.save()
    staff = Client(REMOTE_ADDR="10.0.0.9")
    staff.force_login(user)
    assert staff.get("/metrics").status_code == 200


def test_orders_placed_over_the_websocket_are_counted_like_the_api_ones(funded):
    MarketFactory()
    _, key = token_create(user=funded(USD="1000"))
    order = {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "1"}

    async def place_over_the_socket():
        communicator = WebsocketCommunicator(application, f"/ws/stream?token={key}")
        assert (await communicator.connect())[0]
        answers = []
        for number, sent in enumerate([order, {**order, "price": "100.001"}, {**order, "quantity": "100"}]):
            await communicator.send_json_to({"op": "place", "id": number, "order": sent})
            answer = await communicator.receive_json_from(timeout=10)
            answers.append(answer.get("status") or answer.get("code"))
        await communicator.disconnect()
        return answers

    assert async_to_sync(place_over_the_socket)() == [201, "invalid_price", "insufficient_funds"]
    samples = scrape()
    assert samples[("exchange_orders_accepted_total", ())] == 1
    assert samples[("exchange_orders_refused_total", (("reason", "invalid_price"),))] == 1
    assert samples[("exchange_orders_refused_total", (("reason", "insufficient_funds"),))] == 1
