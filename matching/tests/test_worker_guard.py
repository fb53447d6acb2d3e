"""The shard worker's guard rails, driven step by step in this process against the real MariaDB and Redis."""

import time
from datetime import timedelta
from decimal import Decimal

import MySQLdb
import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import token_create
from exchange_site import redis as redis_
from exchange_site.services_check import server_connect
from ledger.selectors import balances_for_user
from matching import queue
from matching.tests.factories import pending_order_create
from matching.worker import ShardLockLost, ShardWorker
from orders import journal
from orders.models import Order, Trade
from orders.services import market_set_status, order_cancel, order_place
from orders.tests.factories import MarketFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def market(db):
    return MarketFactory()


@pytest.fixture
def worker(market):
    shard = ShardWorker(0, publish_events=False)
    shard.start()
    yield shard
    shard.release_lock()


def drain(worker):
    while worker.step(timeout=0):
        pass


def bal(user, asset):
    return next((r["available"], r["locked"]) for r in balances_for_user(user=user) if r["asset"] == asset)


def place(user, **kwargs):
    order, _ = order_place(user=user, symbol="BTC-USD", **kwargs)
    return order


def status(order):
    order.refresh_from_db()
    return order.status


def test_an_order_the_engine_cannot_process_is_rejected_alone_and_its_batch_settles(worker, market, funded):
    seller, buyer, odd_trader = funded(BTC="1"), funded(USD="1000"), funded(USD="1")
    place(seller, side="sell", price="100", quantity="0.1")
    drain(worker)
    # A market buy whose budget is under one tick x lot (0.00001 USD): the engine cannot size it.
    odd = pending_order_create(
        user=odd_trader, market=market, side="buy", type="market", quote_quantity=Decimal("0.000001"),
        time_in_force="IOC", protection_price=Decimal("105"),
    )  # fmt: skip
    crossing = place(buyer, side="buy", price="100", quantity="0.1")
    assert queue.commands_pop(shard=0, count=10, timeout=0) == [("n", odd.pk), ("n", crossing.pk)]
    worker.process([("n", odd.pk), ("n", crossing.pk)])  # one batch

    odd.refresh_from_db()
    assert (odd.status, odd.reject_reason, odd.hold_remaining) == ("rejected", "invalid_order", 0)
    assert bal(odd_trader, "USD") == (Decimal(1), Decimal(0))
    assert status(crossing) == "filled"
    # The book went on as if the odd order had never come: a new order meets it as it was.
    place(seller, side="sell", price="100", quantity="0.1")
    late = place(buyer, side="buy", price="100", quantity="0.1")
    drain(worker)
    assert status(late) == "filled" and Trade.objects.count() == 2


def refuse_updates_of(order_id):
    """The database refuses any settlement of this order except its rejection (as a broken row would)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TRIGGER refuse_order BEFORE UPDATE ON orders_order FOR EACH ROW "
            f"BEGIN IF NEW.id = {int(order_id)} AND NEW.status <> 'rejected' THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF; END"
        )


def test_a_batch_the_database_refuses_is_replayed_and_only_the_culprit_is_rejected(worker, market, funded):
    seller, buyer, other = funded(BTC="1"), funded(USD="1000"), funded(USD="1000")
    ask = place(seller, side="sell", price="100", quantity="0.1")
    bid = place(buyer, side="buy", price="100", quantity="0.1")
    culprit = place(other, side="buy", price="90", quantity="1")
    refuse_updates_of(culprit.pk)
    try:
        drain(worker)
        drain(worker)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_order")
    assert (status(ask), status(bid)) == ("filled", "filled")
    culprit.refresh_from_db()
    assert (culprit.status, culprit.reject_reason) == ("rejected", "invalid_order")
    assert bal(other, "USD") == (Decimal(1000), Decimal(0))
    assert Trade.objects.count() == 1
    # Matching goes on in big batches afterwards.
    nxt = place(other, side="buy", price="95", quantity="0.1")
    drain(worker)
    assert status(nxt) == "open"


def test_a_halted_market_matches_nothing_cancels_still_work_and_resume_matches_in_order(worker, market, funded):
    seller, buyer, canceler = funded(BTC="1"), funded(USD="1000"), funded(USD="1000")
    resting = place(seller, side="sell", price="100", quantity="0.2")
    drain(worker)
    market_set_status(market=market, status="halted")
    # Accepted just before the halt took effect: their commands reach the shard after it.
    first = pending_order_create(user=buyer, market=market, side="buy", type="limit", price=Decimal("100"),
                                 quantity=Decimal("0.1"))  # fmt: skip
    second = pending_order_create(user=buyer, market=market, side="buy", type="limit", price=Decimal("101"),
                                  quantity=Decimal("0.1"))  # fmt: skip
    doomed = pending_order_create(user=canceler, market=market, side="buy", type="limit", price=Decimal("100"),
                                  quantity=Decimal("0.1"))  # fmt: skip
    drain(worker)
    worker.last_sweep = 0  # a sweep must not match them either
    drain(worker)
    assert [status(o) for o in (first, second, resting)] == ["pending", "pending", "open"]
    order_cancel(user=canceler, order_id=doomed.pk)
    drain(worker)
    assert status(doomed) == "canceled" and bal(canceler, "USD") == (Decimal(1000), Decimal(0))

    market_set_status(market=market, status="open")
    drain(worker)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status, status(resting)) == ("filled", "filled", "filled")
    assert first.sequence < second.sequence  # in their original order
    assert list(Trade.objects.order_by("sequence").values_list("taker_order_id", flat=True)) == [first.pk, second.pk]


def gtd(user, market, seconds, **fields):
    return pending_order_create(
        user=user, market=market, side="buy", type="limit", time_in_force="GTD",
        expire_at=timezone.now() + timedelta(seconds=seconds), **fields,
    )  # fmt: skip


def run_until(worker, predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.step(timeout=0.2)
        if predicate():
            return
    raise AssertionError("condition not reached")


def test_gtd_orders_expire_on_time_with_their_funds_released_even_after_a_restart(worker, market, funded):
    trader = funded(USD="1000")
    soon = gtd(trader, market, 1.5, price=Decimal("100"), quantity=Decimal("1"))
    later = gtd(trader, market, 3, price=Decimal("99"), quantity=Decimal("1"))
    drain(worker)
    assert (status(soon), status(later)) == ("open", "open")
    assert bal(trader, "USD") == (Decimal(801), Decimal(199))

    run_until(worker, lambda: status(soon) == "expired")
    soon.refresh_from_db()
    assert soon.updated_at - soon.expire_at < timedelta(seconds=2)
    assert soon.reject_reason == "expire_at_reached" and status(later) == "open"

    worker.release_lock()  # a restart: the new worker knows expire_at from the database
    restarted = ShardWorker(0, publish_events=False)
    restarted.start()
    try:
        run_until(restarted, lambda: status(later) == "expired")
    finally:
        restarted.release_lock()
    later.refresh_from_db()
    assert later.updated_at - later.expire_at < timedelta(seconds=2)
    assert bal(trader, "USD") == (Decimal(1000), Decimal(0))


def test_a_worker_that_lost_its_lock_writes_nothing(worker, market, funded):
    seller, buyer = funded(BTC="1"), funded(USD="1000")
    ask = place(seller, side="sell", price="100", quantity="0.1")
    bid = place(buyer, side="buy", price="100", quantity="0.1")
    with connection.cursor() as cursor:
        cursor.execute(f"KILL {int(worker.lock_holder)}")
        # Another process takes the shard meanwhile.
        cursor.execute("SELECT GET_LOCK(%s, 5)", [worker.lock_name])
        assert cursor.fetchone() == (1,)
    worker.last_beat = time.monotonic()  # the heartbeat would notice too; this is the commit's own check
    try:
        with pytest.raises(ShardLockLost):
            drain(worker)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", [worker.lock_name])
    assert (status(ask), status(bid)) == ("pending", "pending")
    assert Trade.objects.count() == 0
    # The heartbeat says so too, within a second.
    worker.last_beat = 0
    with pytest.raises(ShardLockLost):
        worker.heartbeat()


def test_a_commit_under_way_keeps_a_successor_from_reading_until_it_ends(worker, market, funded, monkeypatch):
    """The fence rides on the batch's order UPDATE: from then to the commit the lease row stays locked,
    so a process that has just taken the shard's lock waits at its barrier for this commit."""
    seller, buyer = funded(BTC="1"), funded(USD="1000")
    place(seller, side="sell", price="100", quantity="0.1")
    place(buyer, side="buy", price="100", quantity="0.1")
    seen = []
    batch_events_insert = journal.batch_events_insert

    def successor_barrier(**batch):
        # Called inside the batch's transaction, after the order UPDATE.
        db = connection.settings_dict
        other = server_connect(db, database=db["NAME"])
        try:
            with other.cursor() as cursor:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
                with pytest.raises(MySQLdb.OperationalError) as waited:
                    cursor.execute("SELECT shard FROM matching_shardlease WHERE shard = 0 FOR UPDATE")
                seen.append(waited.value.args[0])
        finally:
            other.close()
        batch_events_insert(**batch)

    monkeypatch.setattr(journal, "batch_events_insert", successor_barrier)
    drain(worker)
    assert seen == [1205]  # lock wait timeout: the successor would have waited
    assert Trade.objects.count() == 1


def test_the_sweep_finds_a_lost_order_while_the_queue_is_busy(market, funded):
    worker = ShardWorker(0, publish_events=False, batch_size=1, sweep_seconds=0)
    worker.start()
    try:
        trader = funded(USD="1000")
        lost = pending_order_create(user=trader, market=market, side="buy", type="limit", price=Decimal("90"),
                                    quantity=Decimal("1"), push=False)  # fmt: skip
        first_queued = place(trader, side="buy", price="91", quantity="1")
        for price in ("92", "93"):
            place(trader, side="buy", price=price, quantity="1")
        worker.step(timeout=0)  # one queued command, and the sweep though three more wait
        assert status(lost) == "open"
        # The sweep runs before the commands it popped: the lost order was accepted first.
        lost.refresh_from_db()
        first_queued.refresh_from_db()
        assert lost.sequence < first_queued.sequence
        assert redis_.client().llen(queue.queue_key(0)) >= 1
        drain(worker)
    finally:
        worker.release_lock()


def test_a_retry_after_a_lost_answer_keeps_time_priority(market, funded, monkeypatch):
    """The web process commits an order (or a cancel) and dies before its queue push; the client,
    with no answer, sends the same request again. The replay queues it again at once, so the engine
    sees it before anything accepted after it, not seconds later from its sweep."""
    import orders.services

    worker = ShardWorker(0, publish_events=False, sweep_seconds=3600)  # the sweep must not be what saves it
    worker.start()
    try:
        early, late, buyer = funded(BTC="1"), funded(BTC="1"), funded(USD="1000")
        push = orders.services.commands_push
        monkeypatch.setattr(orders.services, "commands_push", lambda **kwargs: None)  # died before the push
        first = place(early, side="sell", price="100", quantity="0.1", client_order_id="lost-1")
        monkeypatch.setattr(orders.services, "commands_push", push)
        again, created = order_place(user=early, symbol="BTC-USD", side="sell", price="100", quantity="0.1",
                                     client_order_id="lost-1")  # fmt: skip
        assert (again.pk, created) == (first.pk, False)
        second = place(late, side="sell", price="100", quantity="0.1")
        taker = place(buyer, side="buy", price="100", quantity="0.1")
        drain(worker)
        assert (status(first), status(second), status(taker)) == ("filled", "open", "filled")

        # The same for a cancel: asked, committed, not queued; asked again.
        monkeypatch.setattr(orders.services, "commands_push", lambda **kwargs: None)
        order_cancel(user=late, order_id=second.pk)
        monkeypatch.setattr(orders.services, "commands_push", push)
        order_cancel(user=late, order_id=second.pk)
        third = place(early, side="sell", price="100", quantity="0.1")
        taker = place(buyer, side="buy", price="100", quantity="0.1")
        drain(worker)
        assert (status(second), status(third), status(taker)) == ("canceled", "filled", "filled")
    finally:
        worker.release_lock()


def test_orders_are_refused_when_no_shard_of_the_market_is_alive(market, funded, settings):
    settings.SHARD_ALIVE_REQUIRED = True
    trader = funded(USD="1000")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=trader)[1]}")
    body = {"symbol": "BTC-USD", "side": "buy", "price": "10", "quantity": "1"}
    response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "market_unavailable"
    assert Order.objects.count() == 0 and bal(trader, "USD") == (Decimal(1000), Decimal(0))

    queue.shard_alive_mark(shard=0, pid=1, seconds=5)  # what the active shard's heartbeat does
    assert client.post("/api/v1/orders", body, format="json").status_code == 201
