"""Guard rails of real shard processes: odd orders, refused batches, standby and fencing, crashes, a database outage."""

import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from exchange_site.testing import ShardProcess, TcpProxy
from ledger.models import Transfer
from matching.tests.factories import pending_order_create
from orders.models import Order, Trade
from orders.services import order_place
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def market(db):
    return MarketFactory()


def place(user, **kwargs):
    order, _ = order_place(user=user, symbol="BTC-USD", **kwargs)
    return order


def wait_for(predicate, timeout=30, what="condition", shards=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    tails = "\n".join(f"--- {s.log_path}\n{s.log_tail()}" for s in shards)
    raise AssertionError(f"{what} not reached in {timeout}s\n{tails}")


def status(order):
    order.refresh_from_db()
    return order.status


def log_since(shard: ShardProcess, offset: int) -> str:
    return shard.log_path.read_bytes()[offset:].decode(errors="replace")


def log_size(shard: ShardProcess) -> int:
    return shard.log_path.stat().st_size if shard.log_path.exists() else 0


def settled_once() -> None:
    """Every accepted order settled, none twice, and the ledger holds."""
    assert Order.objects.filter(status="pending").count() == 0
    references = list(Transfer.objects.values_list("reference", flat=True))
    assert len(references) == len(set(references))
    call_command("ledger_check")


def test_an_odd_order_is_rejected_within_seconds_and_the_shard_keeps_matching(shard_worker, market, funded):
    start = log_size(shard_worker)
    seller, buyer, odd_trader = funded(BTC="1"), funded(USD="1000"), funded(USD="1")
    ask = place(seller, side="sell", price="100", quantity="0.1")
    wait_for(lambda: status(ask) == "open", shards=[shard_worker])
    odd = pending_order_create(
        user=odd_trader, market=market, side="buy", type="market", quote_quantity=Decimal("0.000001"),
        time_in_force="IOC", protection_price=Decimal("105"),
    )  # fmt: skip
    bid = place(buyer, side="buy", price="100", quantity="0.1")
    wait_for(lambda: status(odd) == "rejected" and status(bid) == "filled", timeout=10, shards=[shard_worker])
    odd.refresh_from_db()
    assert odd.reject_reason == "invalid_order" and odd.hold_remaining == 0
    later = place(buyer, side="buy", price="99", quantity="0.1")
    wait_for(lambda: status(later) == "open", timeout=10, shards=[shard_worker])
    log = log_since(shard_worker, start)
    assert "rebuilt" not in log and "a batch failed" not in log, log


def test_a_batch_the_database_refuses_loses_only_its_culprit(shard_worker, market, funded):
    seller, buyer, other = funded(BTC="1"), funded(USD="1000"), funded(USD="1000")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TRIGGER refuse_order BEFORE UPDATE ON orders_order FOR EACH ROW "
            f"BEGIN IF NEW.user_id = {int(other.pk)} AND NEW.status <> 'rejected' THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF; END"
        )
    try:
        ask = place(seller, side="sell", price="100", quantity="0.1")
        culprit = place(other, side="buy", price="90", quantity="1")
        bid = place(buyer, side="buy", price="100", quantity="0.1")
        wait_for(lambda: status(culprit) == "rejected" and status(bid) == "filled", shards=[shard_worker])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_order")
    assert status(ask) == "filled" and Trade.objects.count() == 1
    again = place(other, side="buy", price="90", quantity="1")
    wait_for(lambda: status(again) == "open", shards=[shard_worker])
    settled_once()


def lock_holder_connection() -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT IS_USED_LOCK(%s)", [f"{connection.settings_dict['NAME']}:shard:0"])
        return cursor.fetchone()[0]


def cross(seller, buyer, price="100"):
    ask = place(seller, side="sell", price=price, quantity="0.1")
    bid = place(buyer, side="buy", price=price, quantity="0.1")
    return ask, bid


def test_a_standby_never_settles_and_takes_over_when_the_active_loses_its_lock(shard_worker, market, funded):
    standby = ShardProcess(0, name="b").start(standby=True)
    try:
        seller, buyer = funded(BTC="1"), funded(USD="1000")
        orders = cross(seller, buyer)
        wait_for(lambda: all(status(o) == "filled" for o in orders), shards=[shard_worker, standby])
        assert "active" not in standby.log_tail(200)

        with connection.cursor() as cursor:
            cursor.execute(f"KILL {int(lock_holder_connection())}")
        standby.wait_state("ready", timeout=30)
        shard_worker.wait_state("standby", timeout=30)  # the old one stopped and waits in turn
        assert "stopped matching" in shard_worker.log_tail(200)

        orders = cross(seller, buyer, price="101")
        wait_for(lambda: all(status(o) == "filled" for o in orders), shards=[shard_worker, standby])
        assert Trade.objects.count() == 2
        settled_once()
    finally:
        standby.stop()


def test_sigkill_of_the_active_shard_hands_over_to_the_standby(shard_worker, market, funded):
    standby = ShardProcess(0, name="b").start(standby=True)
    try:
        sellers = [funded(BTC="10") for _ in range(3)]
        buyers = [funded(USD="10000") for _ in range(3)]
        before = [place(s, side="sell", price=str(100 + n), quantity="0.1") for n, s in enumerate(sellers)]
        wait_for(lambda: all(status(o) == "open" for o in before), shards=[shard_worker])
        shard_worker.kill()
        killed_at = time.monotonic()
        taker = place(buyers[0], side="buy", price="100", quantity="0.1")
        wait_for(lambda: status(taker) == "filled", shards=[standby])
        takeover = time.monotonic() - killed_at
        print(f"takeover: SIGKILL to the standby's first fill in {takeover:.2f}s")
        after = [place(b, side="buy", price="110", quantity="0.1") for b in buyers[1:]]
        wait_for(lambda: all(status(o) == "filled" for o in after), shards=[standby])
        assert Trade.objects.count() == 3
        settled_once()
        assert takeover < 15  # a loaded test machine; about 1 s on a quiet one
    finally:
        standby.stop()


def test_the_shard_waits_out_a_database_outage_and_resumes(market, funded):
    db = connection.settings_dict
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 3306))
    shard = ShardProcess(0, name="proxied", env={"DATABASE_URL": proxy.database_url()})
    try:
        shard.start()
        seller, buyer = funded(BTC="10"), funded(USD="10000")
        first = cross(seller, buyer)
        wait_for(lambda: all(status(o) == "filled" for o in first), shards=[shard])

        start = log_size(shard)
        proxy.cut()
        during = cross(seller, buyer, price="101")  # accepted by the web side meanwhile
        wait_for(lambda: "cannot reach the database" in log_since(shard, start), shards=[shard])
        assert [status(o) for o in during] == ["pending", "pending"]
        proxy.restore()
        shard.wait_state("ready", timeout=30)
        wait_for(lambda: all(status(o) == "filled" for o in during), shards=[shard])
        after = cross(seller, buyer, price="102")
        wait_for(lambda: all(status(o) == "filled" for o in after), shards=[shard])
        assert Trade.objects.count() == 3
        settled_once()
    finally:
        shard.stop()
        proxy.close()


def test_a_halted_market_holds_its_orders_until_resumed(shard_worker, market, funded):
    from orders.services import market_set_status, order_cancel

    seller, buyer, canceler = funded(BTC="1"), funded(USD="1000"), funded(USD="1000")
    resting = place(seller, side="sell", price="100", quantity="0.1")
    wait_for(lambda: status(resting) == "open", shards=[shard_worker])
    market_set_status(market=market, status="halted")
    # Accepted just before the halt took effect, queued behind it.
    crossing = pending_order_create(user=buyer, market=market, side="buy", type="limit", price=Decimal("100"),
                                    quantity=Decimal("0.1"))  # fmt: skip
    doomed = pending_order_create(user=canceler, market=market, side="buy", type="limit", price=Decimal("100"),
                                  quantity=Decimal("0.1"))  # fmt: skip
    order_cancel(user=canceler, order_id=doomed.pk)
    # The cancel came behind the crossing order: once it is done, the shard has seen both.
    wait_for(lambda: status(doomed) == "canceled", shards=[shard_worker])
    assert (status(crossing), status(resting)) == ("pending", "open")

    market_set_status(market=market, status="open")
    wait_for(lambda: status(crossing) == "filled" and status(resting) == "filled", shards=[shard_worker])
    settled_once()


def test_the_shard_matches_from_the_database_while_redis_is_down(market, funded):
    from django.conf import settings

    proxy = TcpProxy("127.0.0.1", int(settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0]))
    shard = ShardProcess(
        0,
        name="redisproxied",
        env={"REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0", "CELERY_BROKER_URL": settings.REDIS_URL},
    )
    try:
        shard.start()
        seller, buyer = funded(BTC="10"), funded(USD="10000")
        proxy.cut()
        during = cross(seller, buyer)  # queued where the shard cannot read
        wait_for(lambda: all(status(o) == "filled" for o in during), shards=[shard])
        proxy.restore()
        after = cross(seller, buyer, price="101")
        wait_for(lambda: all(status(o) == "filled" for o in after), shards=[shard])
        assert Trade.objects.count() == 2
        settled_once()
    finally:
        shard.stop()
        proxy.close()
