"""bench_pipeline: accepted orders through Redis, a running shard worker and batched settlement.

N orders are accepted the way the API accepts them (order row pending + funds held, in bulk so
the set-up is quick), then their commands are pushed onto the shard's Redis queue while a shard
worker (the same ShardWorker class the Celery shard process runs, here in a thread of this
process so every commit can be timed) reads, matches and settles them. Prints one JSON line:
orders per second from the first push to the last commit, and queue-to-commit latency p50/p99.
About half the orders trade: the stream alternates resting quotes and orders that cross them.
"""

from __future__ import annotations

import json
import random
import threading
import time
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection, connections, transaction

from exchange_site import redis as redis_
from exchange_site.services_check import database_create
from ledger.models import LedgerAccount, Transfer
from ledger.services import Posting, accounts_get_or_create, asset_get_or_create, funds_deposit, transfers_post
from matching import queue
from matching.worker import ShardWorker
from orders.models import Market, Order

SYMBOL = "BENCH-USD"
SHARD = 99  # no other process serves this shard


class TimedShardWorker(ShardWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.committed_at: dict[int, float] = {}

    def commit(self, item):
        super().commit(item)  # the transaction is committed when this returns; events go out after
        now = time.perf_counter()
        for order_id in item.order_ids:
            self.committed_at.setdefault(order_id, now)


class Command(BaseCommand):
    help = "Measure accepted orders -> Redis -> shard worker -> committed settlement; prints one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--orders", type=int, default=50_000)
        parser.add_argument("--traders", type=int, default=20)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument(
            "--rate",
            type=int,
            default=None,
            help="Push at this many orders per second instead of all at once: latency at a steady load.",
        )

    def handle(self, *args, orders: int, traders: int, seed: int, batch_size: int | None, rate: int | None, **options):
        self.stderr.write(f"benchmarking in database {use_bench_database()} ...")
        market, users = self.prepare(traders)
        # The worker starts first: its start-up sweep would otherwise settle the orders before any push.
        worker = TimedShardWorker(SHARD, batch_size=batch_size, sweep_seconds=3600, pipelined=True)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        ready = redis_.key("shard", SHARD, "ready")
        redis_.client().delete(ready)
        thread.start()
        while not redis_.client().get(ready):
            time.sleep(0.01)
        self.stderr.write(f"accepting {orders} orders ...")
        ids = self.accept(market, users, orders, random.Random(seed))
        worker.committed_at.clear()
        worker.stats = {"batches": 0, "commands": 0, "trades": 0}

        pushed_at: dict[int, float] = {}
        client = redis_.client()
        first_push = time.perf_counter()
        cpu_start = time.process_time()
        chunk_size = 1000 if rate is None else max(1, rate // 100)  # paced: a chunk every 10 ms
        for start in range(0, len(ids), chunk_size):
            if rate is not None:
                time.sleep(max(0.0, first_push + start / rate - time.perf_counter()))
            chunk = ids[start : start + chunk_size]
            client.rpush(queue.queue_key(SHARD), *[f"{queue.PLACE}:{order_id}" for order_id in chunk])
            now = time.perf_counter()
            for order_id in chunk:
                pushed_at[order_id] = now
        deadline = time.monotonic() + 600
        # Only this run's orders are committed from here on (the book was emptied after the last run), so a
        # count is enough; the check stays O(1) because it shares the GIL with the worker it measures.
        while len(worker.committed_at) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu_seconds = time.process_time() - cpu_start
        last_commit = max(worker.committed_at[i] for i in ids)
        elapsed = last_commit - first_push
        latencies = sorted((worker.committed_at[i] - pushed_at[i]) * 1000 for i in ids)
        stats = dict(worker.stats)

        # Leave nothing resting: cancel what is left through the same queue, then check the ledger.
        resting = list(Order.objects.filter(market=market, status__in=Order.LIVE_STATUSES).values_list("id", flat=True))
        Order.objects.filter(pk__in=resting).update(cancel_requested_at=time_now())
        for start in range(0, len(resting), 1000):
            client.rpush(queue.queue_key(SHARD), *[f"{queue.CANCEL}:{i}" for i in resting[start : start + 1000]])
        while Order.objects.filter(market=market, status__in=Order.LIVE_STATUSES).exists():
            time.sleep(0.1)
        stop.set()
        thread.join()
        # Halted between runs: the demo bots trade every open market and hold no BENCH.
        Market.objects.filter(pk=market.pk).update(status=Market.Status.HALTED)
        connection.close()
        call_command("ledger_check", stdout=self.stderr)

        self.stdout.write(
            json.dumps(
                {
                    "benchmark": "pipeline",
                    "orders": len(ids),
                    "traders": traders,
                    "push_rate": rate or "all at once",
                    "trades": stats["trades"],
                    "batches": stats["batches"],
                    "orders_traded_pct": round(100 * traded_share(ids), 1),
                    "seconds": round(elapsed, 3),
                    "orders_per_second": round(len(ids) / elapsed),
                    # CPU this process used meanwhile (matching, settling, publishing, the pushes):
                    # near "seconds" means the worker is bound by Python, not by the database.
                    "process_cpu_seconds": round(cpu_seconds, 3),
                    "queue_to_commit_ms_p50": round(latencies[len(latencies) // 2], 1),
                    "queue_to_commit_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 1),
                    "ledger_check": "ok",
                }
            )
        )

    def prepare(self, traders: int):
        usd = asset_get_or_create(code="USD")
        bench = asset_get_or_create(code="BENCH")
        market, _ = Market.objects.get_or_create(
            symbol=SYMBOL,
            defaults={
                "base": bench,
                "quote": usd,
                "tick_size": Decimal("0.01"),
                "lot_size": Decimal("0.001"),
                "shard": SHARD,
            },
        )
        # Halted between runs (below); a halted market's orders would wait, untouched, for a resume.
        Market.objects.filter(pk=market.pk).update(status=Market.Status.OPEN)
        market.status = Market.Status.OPEN
        User = get_user_model()
        users = []
        for n in range(traders):
            user, created = User.objects.get_or_create(username=f"bench-{n}")
            if created:
                funds_deposit(user=user, asset=usd, amount=Decimal("1000000000"))
                funds_deposit(user=user, asset=bench, amount=Decimal("1000000000"))
            users.append(user)
        return market, users

    def accept(self, market: Market, users, count: int, rng: random.Random) -> list[int]:
        """Pending orders with their funds held, exactly what order_place leaves behind, in bulk."""
        rows = []
        for n in range(count):
            user = users[n % len(users)]
            side = Order.Side.BUY if rng.random() < 0.5 else Order.Side.SELL
            # Even orders rest a few ticks off a mid of 100.00; odd ones cross up to 5 ticks through it.
            offset = rng.randint(1, 20) if n % 2 == 0 else -rng.randint(0, 5)
            ticks = 10000 - offset if side == Order.Side.BUY else 10000 + offset
            price = Decimal(ticks) / 100
            quantity = Decimal(rng.randint(1, 50)) / 1000
            hold = price * quantity if side == Order.Side.BUY else quantity
            rows.append(
                Order(
                    user=user,
                    market=market,
                    side=side,
                    type=Order.Type.LIMIT,
                    price=price,
                    quantity=quantity,
                    time_in_force=Order.TimeInForce.GTC,
                    stp=Order.Stp.NONE,
                    hold_remaining=hold,
                )
            )
        with transaction.atomic():
            Order.objects.bulk_create(rows, batch_size=2000)
            assets = {Order.Side.BUY: market.quote, Order.Side.SELL: market.base}
            accounts = accounts_get_or_create(
                specs=[(u.pk, a, k) for u in users for a in assets.values() for k in LedgerAccount.USER_KINDS]
            )
            postings = [
                Posting(
                    debit_id=accounts[(o.user_id, assets[o.side].id, LedgerAccount.Kind.AVAILABLE)],
                    credit_id=accounts[(o.user_id, assets[o.side].id, LedgerAccount.Kind.LOCKED)],
                    asset_id=assets[o.side].id,
                    amount=o.hold_remaining,
                    kind=Transfer.Kind.HOLD,
                    reference=f"order:{o.pk}:hold",
                )
                for o in rows
            ]
            for start in range(0, len(postings), 5000):
                transfers_post(postings=postings[start : start + 5000])
        return [o.pk for o in rows]


def use_bench_database() -> str:
    """Point this process at ``<NAME>_bench``, created and migrated on first use, and return its name.

    The benchmark deposits a billion of each asset to its traders and leaves 50,000 orders behind:
    none of that may land in the exchange's own ledger, even when an operator runs it on a live host.
    Every connection of this process, the shard worker's threads' included, reads this same dict.
    """
    db = settings.DATABASES["default"]
    name = db["NAME"] if db["NAME"].endswith("_bench") else f"{db['NAME']}_bench"
    connections.close_all()
    database_create(db, name)
    db["NAME"] = name
    call_command("migrate", verbosity=0, interactive=False)
    return name


def time_now():
    from django.utils import timezone

    return timezone.now()


def traded_share(ids) -> float:
    from django.db.models import Q

    from orders.models import Trade

    traded = set(Trade.objects.filter(Q(taker_order_id__in=ids)).values_list("taker_order_id", flat=True))
    traded |= set(Trade.objects.filter(Q(maker_order_id__in=ids)).values_list("maker_order_id", flat=True))
    return len(traded) / len(ids)
