"""The shard worker: the adapter between Redis, the pure engine and the database.

One process per shard (a Celery worker started with ``--shard K``, see matching/celery_step.py)
owns the books of the markets whose ``shard`` is K. It reads commands from the shard's Redis queue
in batches, runs them through the engine, settles the batch in ONE transaction
(orders/settlement.py) and publishes events only after the commit.

Threads (pipelined mode, as the shard process runs it):

- the matching thread (``run``) owns everything on the worker: books, ``live``, ``in_flight``,
  the GTD expiry heap, the lock connection. It matches batch N+1 while batch N commits, and hands
  each matched batch to the Committer through its queue (one waiting item at most).
- the Committer thread commits the batches in order on its own database connection. It removes a
  committed batch's orders from ``in_flight`` (a set, changed by single operations under the GIL)
  and hands the batch to the Publisher through its queue. After a failure it records the error,
  skips whatever is queued and waits for the matching thread to look (``_check_committer``).
- the Publisher thread sends each committed batch's events, in commit order; it only reads.

Exclusive ownership and fencing: a MariaDB named lock (GET_LOCK) per shard. A second process
started for the same shard waits on it (a standby) and takes over when the holder's lock
connection goes away (the process died, or its connection was killed or cut). Every commit proves,
inside its transaction and before it writes anything, that the lock is still held by this process's
lock connection, and share-locks the shard's ShardLease row until it ends: the batch's order UPDATE
joins that row on that condition (``fence``), so the proof costs no round trip of its own. A process
that has just taken the lock locks that row for update before it reads the books, so it waits for
any commit its predecessor still has under way. A worker that
finds it lost the lock (at a commit, or in its once-a-second heartbeat) writes nothing more, drops
its books and goes back to waiting. While active it keeps ``shard:K:alive`` set in Redis.

Recovery: the database is the record. On taking the lock the worker rebuilds each book from the
open orders in their priority (``Order.sequence``), then processes every pending order and cancel
request it finds, skipping what is already settled (a command whose order is no longer pending is
a no-op). The same sweep runs every ``SHARD_SWEEP_SECONDS`` whatever the queue holds, so an order
whose queue message was lost with Redis is still matched, under load too. The database going away
is the same as losing the lock: the worker waits (retrying with backoff) and starts over.

No order stops a shard: an order the engine refuses (it raises before changing the book) is
rejected alone with ``invalid_order``. A batch the database refuses makes the worker rebuild and
replay the pending commands in small batches, each committed at once, and one by one within a
small batch that fails again; a command whose own batch still fails is rejected alone in its own
transaction (a cancel is left aside and logged), and the worker carries on in full batches.

Halts: while a market is halted its new orders stay pending, untouched; cancels still apply. A
status change arrives in queue order (``s:<market id>``, pushed on commit by the halt service) and
is also noticed by the sweep; on resume the market's pending orders are matched in their order.

GTD orders rest until ``expire_at``; a heap of (expire_at, order id) is checked every step and the
due ones are taken out of the book like cancels, ending ``expired``.
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from queue import Queue

import MySQLdb
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from exchange_site import redis as redis_
from exchange_site.services_check import server_connect
from marketdata import presence, publish
from monitoring.recorders import shard_batch_record
from orders.models import Market, Order, Trade
from orders.serializers import dec, fills_of_trade, iso, order_fixed_data, order_state_data, trade_public_data
from orders.settlement import (
    Batch,
    Fence,
    Fill,
    LiveOrder,
    PreparedBatch,
    SettledTrade,
    batch_prepare,
    batch_write,
)

from . import queue
from .engine import OrderBook, OrderUpdate
from .models import ShardLease

log = logging.getLogger("matching.shard")

LIVE = (Order.Status.OPEN.value, Order.Status.PARTIALLY_FILLED.value)
BUY, MARKET = Order.Side.BUY.value, Order.Type.MARKET.value
OPEN_MARKET = Market.Status.OPEN.value
CANCELED, EXPIRED, REJECTED = Order.Status.CANCELED.value, Order.Status.EXPIRED.value, Order.Status.REJECTED.value
GTC, GTD = Order.TimeInForce.GTC.value, Order.TimeInForce.GTD.value
R_INVALID = "invalid_order"  # the engine cannot process it, or its settlement fails alone
R_USER = "canceled_by_user"
R_GTD = "expire_at_reached"
CONVERSION_CACHE_SIZE = 100_000
GIL_SWITCH_SECONDS = 0.001
CAREFUL_BATCH_SIZE = 50  # after a batch failed: replayed this many commands at a time, then one by one
HEARTBEAT_SECONDS = 1.0  # how often the active shard proves its lock and refreshes shard:K:alive
LOCK_WAIT_SECONDS = 1.0  # one GET_LOCK attempt of a standby
LOG_EVERY_SECONDS = 30.0  # a fault that lasts is logged once per this period, not once per retry
# MySQL client and server codes of a connection that is gone: can't connect, server gone away,
# lost during a query, connection killed, server shutting down.
CONNECTION_ERRORS = {2002, 2003, 2006, 2013, 2055, 1927, 1053, 4031}
LIVE_FIELDS = (
    "id",
    "user_id",
    "market_id",
    "side",
    "type",
    "price",
    "quantity",
    "quote_quantity",
    "time_in_force",
    "post_only",
    "stp",
    "client_order_id",
    "created_at",
    "updated_at",
    "status",
    "filled_quantity",
    "filled_quote",
    "hold_remaining",
    "sequence",
    "reject_reason",
    "protection_price",
    "expire_at",
)


# What settlement writes: a pending order has none of it yet, so it is not read, only set.
SETTLED_FIELDS = ("updated_at", "status", "filled_quantity", "filled_quote", "sequence", "reject_reason")
PENDING_FIELDS = tuple(field for field in LIVE_FIELDS if field not in SETTLED_FIELDS)
ZERO, ONE = Decimal(0), Decimal(1)


def pending_orders(ids) -> list[LiveOrder]:
    """The still-pending orders among ``ids``: one plain query, no ORM objects (this is per batch)."""
    if not ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(PENDING_FIELDS)} FROM {Order._meta.db_table} "
            f"WHERE status = %s AND id IN ({', '.join(str(int(i)) for i in ids)})",
            [Order.Status.PENDING],
        )
        rows = cursor.fetchall()
    out = []
    for values in rows:
        order = LiveOrder(
            **dict(zip(PENDING_FIELDS, values, strict=True)),
            updated_at=None,  # created_at below, until settlement sets it
            status=Order.Status.PENDING.value,
            filled_quantity=ZERO,
            filled_quote=ZERO,
        )
        # The driver hands back MariaDB's naive UTC datetimes and tinyint booleans.
        order.created_at = order.updated_at = order.created_at.replace(tzinfo=UTC)
        if order.expire_at is not None:
            order.expire_at = order.expire_at.replace(tzinfo=UTC)
        order.post_only = bool(order.post_only)
        order.price, order.quantity, order.quote_quantity = (
            short(order.price),
            short(order.quantity),
            short(order.quote_quantity),
        )
        order.hold_remaining, order.protection_price = short(order.hold_remaining), short(order.protection_price)
        out.append(order)
    return out


def short(value: Decimal | None) -> Decimal | None:
    """The same amount without the column's 18 trailing decimal places (exact: the context keeps 60 digits).

    Settlement renders every figure it derives from an order as SQL text: a price of 100.000000000000000000 made
    each event, order and trade row carry figures of up to 36 decimals (a price times a quantity), which
    MariaDB parsed and then rounded back to 18.
    """
    if value is None:
        return None
    value = value.normalize()
    # 100 normalizes to 1E+2: kept as 100, so no figure is ever written with an exponent.
    return value if value.as_tuple().exponent <= 0 else value.quantize(ONE)


def database_down(exc: BaseException | None) -> bool:
    """Is this error the database (or the way to it) going away, rather than a statement it refused?"""
    for _ in range(10):  # the cause chain, not an endless context cycle
        if exc is None:
            return False
        if isinstance(exc, InterfaceError | MySQLdb.InterfaceError):
            return True
        if isinstance(exc, OperationalError | MySQLdb.OperationalError) and exc.args:
            if exc.args[0] in CONNECTION_ERRORS:
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def _close_quietly() -> None:
    """Drop this thread's database connection; one to a database that went away may fail to close."""
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - it is dropped either way
        pass


class ShardLockTaken(RuntimeError):
    pass


class ShardLockLost(RuntimeError):
    """This process no longer holds its shard's lock (or cannot tell): it must stop matching."""


class Throttled:
    """Logs a lasting fault once per period instead of once per retry."""

    def __init__(self, every: float = LOG_EVERY_SECONDS):
        self.every = every
        self.last = -every

    def __call__(self, level: int, message: str, *args, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            log.log(level, message, *args, exc_info=exc_info)

    def reset(self) -> None:
        self.last = -self.every


class MarketState:
    """A market's book plus the unit conversions between the engine's integers and Decimals."""

    def __init__(self, market: Market):
        self.market = market
        self.book = OrderBook(market.symbol)
        # Without the column's trailing zeros (``short``): every price and size of a fill is made from these.
        self.tick = short(market.tick_size)
        self.lot = short(market.lot_size)
        self.notional_unit = self.tick * self.lot
        self.next_trade_sequence = 1
        # Remembered: a Decimal division per order and fill is a measurable share of a batch, and
        # prices and sizes repeat.
        self.ticks = lru_cache(maxsize=CONVERSION_CACHE_SIZE)(self._ticks)
        self.lots = lru_cache(maxsize=CONVERSION_CACHE_SIZE)(self._lots)

    @property
    def halted(self) -> bool:
        return self.market.status != OPEN_MARKET

    def _ticks(self, price: Decimal) -> int:
        return int(price / self.tick)

    def _lots(self, quantity: Decimal) -> int:
        return int(quantity / self.lot)


class ShardWorker:
    def __init__(
        self,
        shard: int,
        *,
        batch_size: int | None = None,
        sweep_seconds: float | None = None,
        publish_events: bool = True,
        pipelined: bool = False,
    ):
        self.shard = shard
        self.batch_size = batch_size or settings.SHARD_BATCH_SIZE
        self.sweep_seconds = sweep_seconds if sweep_seconds is not None else settings.SHARD_SWEEP_SECONDS
        self.alive_seconds = settings.SHARD_ALIVE_SECONDS
        self.publish_events = publish_events
        self.markets: dict[int, MarketState] = {}
        self.by_symbol: dict[str, MarketState] = {}
        self.live: dict[int, LiveOrder] = {}  # resting orders
        self.account_ids: dict[tuple[int | None, int, str], int] = {}  # ledger accounts settlement has used
        self.order_sequence = 0
        self.lock_connection = None
        self.lock_holder: int | None = None  # CONNECTION_ID() of the lock connection
        self.lock_name = f"{settings.DATABASES['default']['NAME']}:shard:{shard}"
        self.last_sweep = 0.0
        self.last_beat = 0.0
        self.stats = {"batches": 0, "commands": 0, "trades": 0}
        # Orders of batches matched but not yet committed: the database still shows them pending.
        self.in_flight: set[int] = set()
        # GTD orders resting in the books: (expire_at, order id), the soonest first.
        self.expiries: list[tuple[datetime, int]] = []
        # Commands whose settlement failed even alone and could not be rejected either: skipped.
        self.poisoned: set[int] = set()
        self.redis_trouble = Throttled()
        self.committer = Committer(self) if pipelined else None
        # Events of committed batches go out from a third thread, off the committing path.
        self.publisher = Publisher(self) if pipelined else None

    # --- the shard lock ---------------------------------------------------------------------

    def acquire_lock(self, wait: float = 10) -> None:
        if not self._lock_try(wait):
            raise ShardLockTaken(f"another process owns shard {self.shard}")

    def _lock_try(self, wait: float) -> bool:
        if self.lock_connection is None:
            db = settings.DATABASES["default"]
            self.lock_connection = server_connect(
                db, database=db["NAME"], connect_timeout=3, read_timeout=max(10, int(wait) + 5), write_timeout=10
            )
        with self.lock_connection.cursor() as cursor:
            # Held for the life of this connection: if the process dies, MariaDB releases it.
            cursor.execute("SELECT GET_LOCK(%s, %s), CONNECTION_ID()", [self.lock_name, wait])
            got, holder = cursor.fetchone()
        if got == 1:
            self.lock_holder = holder
            return True
        return False

    def lock_wait(self, stop: threading.Event) -> bool:
        """Block until this process holds the shard lock (True) or ``stop`` is set (False)."""
        trouble = Throttled()
        backoff = 0.1
        announced = False
        while not stop.is_set():
            try:
                if self._lock_try(LOCK_WAIT_SECONDS):
                    return True
                backoff = 0.1
                if not announced:
                    log.info("shard %s: standing by; another process holds the shard lock", self.shard)
                    announced = True
                    self._redis_quietly(lambda c: c.set(redis_.key("shard", self.shard, "standby"), os.getpid()))
            except MySQLdb.Error:
                trouble(
                    logging.WARNING, "shard %s: cannot reach the database to take the shard lock; retrying", self.shard
                )
                self.release_lock()
                stop.wait(backoff)
                backoff = min(backoff * 2, 1.0)
        return False

    def lock_check(self) -> None:
        """Raise ShardLockLost unless the lock connection is alive and still holds the lock."""
        try:
            with self.lock_connection.cursor() as cursor:
                cursor.execute("SELECT IS_USED_LOCK(%s)", [self.lock_name])
                (holder,) = cursor.fetchone()
        except (MySQLdb.Error, AttributeError) as exc:
            raise ShardLockLost(f"shard {self.shard}: the lock connection is gone ({exc})") from exc
        if holder != self.lock_holder:
            raise ShardLockLost(f"shard {self.shard}: the lock is held by connection {holder}, not by this process")

    def fence(self) -> Fence:
        """The proof every settlement transaction gives that only the lock's holder writes the shard's books.

        The batch's order UPDATE joins the shard's lease row on the condition that the lock is still held
        by this process's lock connection (``Fence``): it writes nothing otherwise, and keeps the row
        share-locked until the commit, so a process that takes the lock after this check waits
        (``_lease_barrier`` locks the row for update) until this transaction has ended before it reads
        anything.
        """
        if self.lock_holder is None:
            raise self._lock_lost()
        return Fence(
            join=f"JOIN {ShardLease._meta.db_table} fence ON fence.shard = %s AND IS_USED_LOCK(%s) = %s",
            params=(self.shard, self.lock_name, self.lock_holder),
            check=self.fence_check,
            lost=self._lock_lost,
        )

    def fence_check(self) -> None:
        """The same proof as a statement of its own, for a transaction without order rows."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT IS_USED_LOCK(%s) FROM {ShardLease._meta.db_table} WHERE shard = %s FOR UPDATE",
                [self.lock_name, self.shard],
            )
            row = cursor.fetchone()
        if row is None or self.lock_holder is None or row[0] != self.lock_holder:
            raise self._lock_lost()

    def _lock_lost(self) -> ShardLockLost:
        return ShardLockLost(f"shard {self.shard}: lost the shard lock; nothing of this batch is written")

    def _lease_barrier(self) -> None:
        ShardLease.objects.get_or_create(shard=self.shard)
        with transaction.atomic(durable=True):
            list(ShardLease.objects.select_for_update().filter(shard=self.shard))

    def release_lock(self) -> None:
        if self.lock_connection is not None:
            try:
                self.lock_connection.close()
            except MySQLdb.Error:
                pass
            self.lock_connection = None
            self.lock_holder = None

    # --- start-up -------------------------------------------------------------------------

    def load_markets(self) -> list[int]:
        """Reads the shard's markets; returns the ids of those that were halted and are open now."""
        resumed = []
        for market in Market.objects.filter(shard=self.shard).select_related("base", "quote"):
            if market.pk not in self.markets:
                state = MarketState(market)
                state.next_trade_sequence = (
                    Trade.objects.filter(market=market).aggregate(m=Max("sequence"))["m"] or 0
                ) + 1
                self.markets[market.pk] = state
                self.by_symbol[market.symbol] = state
            else:
                # Fees, status and the like may change while running; increments may not.
                state = self.markets[market.pk]
                if state.halted and market.status == OPEN_MARKET:
                    resumed.append(market.pk)
                state.market = market
        return resumed

    def rebuild(self) -> None:
        """Books from the database: open orders in their original priority."""
        self.markets.clear()
        self.by_symbol.clear()
        self.live.clear()
        self.expiries.clear()
        self.account_ids.clear()
        self.load_markets()
        self.order_sequence = Order.objects.filter(market__shard=self.shard).aggregate(m=Max("sequence"))["m"] or 0
        rows = (
            Order.objects.filter(market__shard=self.shard, status__in=LIVE)
            .order_by("sequence")
            .values_list(*LIVE_FIELDS)
        )
        for values in rows.iterator(chunk_size=5000):
            live = LiveOrder(**dict(zip(LIVE_FIELDS, values, strict=True)))
            for name in ("price", "quantity", "quote_quantity", "filled_quantity", "filled_quote", "hold_remaining"):
                setattr(live, name, short(getattr(live, name)))
            state = self.markets[live.market_id]
            live.remaining = live.quantity - live.filled_quantity
            try:
                state.book.restore(
                    order_id=live.id,
                    owner=live.user_id,
                    side=live.side,
                    price=state.ticks(live.price),
                    remaining=state.lots(live.remaining),
                    filled=state.lots(live.filled_quantity),
                    spent=int(live.filled_quote / state.notional_unit),
                    stp=live.stp,
                )
            except Exception:
                # A row no book can hold must not keep the shard from starting: it stays as it is,
                # out of the book, for an operator to look at.
                log.exception(
                    "shard %s: resting order %s cannot be put back in its book; left out", self.shard, live.id
                )
                continue
            self.live[live.id] = live
            if live.expire_at is not None:
                self.expiries.append((live.expire_at, live.id))
        heapq.heapify(self.expiries)
        for state in self.markets.values():
            try:
                self._publish_top(state)
                if self.publish_events:
                    bids, asks = state.book.depth()
                    publish.depth_reset(
                        symbol=state.market.symbol,
                        bids=[(dec(p * state.tick), dec(q * state.lot)) for p, q in bids],
                        asks=[(dec(p * state.tick), dec(q * state.lot)) for p, q in asks],
                    )
            except Exception:  # Redis down: matching goes on; depth is reset again on the next rebuild
                log.warning("shard %s: cannot publish the depth of %s", self.shard, state.market.symbol)
        log.info("shard %s: rebuilt %d markets, %d resting orders", self.shard, len(self.markets), len(self.live))

    def start(self) -> None:
        """Take the lock (or fail after a few seconds) and become the active shard."""
        self.acquire_lock()
        self.activate()

    def activate(self) -> None:
        """With the lock held: wait out the previous holder's last commit, rebuild, catch up."""
        self._lease_barrier()
        self.rebuild()
        self.sweep(min_age=timedelta(0))
        self.heartbeat(force=True)
        self._redis_quietly(lambda c: c.set(redis_.key("shard", self.shard, "ready"), os.getpid()))
        log.info("shard %s: active (pid %s)", self.shard, os.getpid())

    def stand_down(self) -> None:
        """Drop everything this process knew as the active shard and let go of the lock."""
        if self.committer is not None:
            self.committer.queue.join()  # whatever it still had is skipped or fails the fence
            self.committer.reset()
            self.committer.reconnect.set()
        self.in_flight.clear()
        self.markets.clear()
        self.by_symbol.clear()
        self.live.clear()
        self.expiries.clear()
        self.account_ids.clear()
        self.poisoned.clear()
        self.release_lock()
        _close_quietly()
        pid = str(os.getpid()).encode()
        for name in ("ready", "alive"):
            key = redis_.key("shard", self.shard, name)
            self._redis_quietly(lambda c, key=key: c.get(key) == pid and c.delete(key))

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if self.committer is not None:
            # The committing thread makes a dozen database round trips per batch and, after each,
            # waits for the GIL that the matching thread holds; the default 5 ms switch interval
            # makes that wait the largest part of a commit. This process is the shard's alone.
            sys.setswitchinterval(GIL_SWITCH_SECONDS)
            self.committer.start()
            self.publisher.start()
        try:
            while self.lock_wait(stop):
                try:
                    self.activate()
                    while not stop.is_set():
                        self.step(timeout=0.5)
                except Exception as exc:
                    if isinstance(exc, ShardLockLost) or database_down(exc):
                        log.warning("shard %s: stopped matching: %s; waiting for the shard lock again", self.shard, exc)
                    else:
                        log.exception("shard %s: unexpected error; starting over from the database", self.shard)
                        stop.wait(1.0)
                self.stand_down()
        finally:
            if self.committer is not None:
                self.committer.close()
                self.publisher.close()
            self.release_lock()
            connection.close()

    def step(self, timeout: float = 0.5) -> int:
        self.heartbeat()
        expiring = self._due_expiries()
        if self.expiries:
            wait = (self.expiries[0][0] - timezone.now()).total_seconds()
            timeout = max(0.0, min(timeout, wait))
        if expiring:
            timeout = 0
        try:
            commands = queue.commands_pop(shard=self.shard, count=self.batch_size, timeout=timeout)
            self.redis_trouble.reset()
        except Exception:  # Redis down: keep matching from the database sweep until it is back
            self.redis_trouble(logging.WARNING, "shard %s: cannot read the Redis queue", self.shard, exc_info=True)
            commands = []
            time.sleep(timeout)
        if time.monotonic() - self.last_sweep > self.sweep_seconds:
            # Whatever the queue holds: under a steady load the queue is never empty, and an order
            # whose message was lost must still be matched. Commands of orders already settled or in
            # flight are no-ops, so the sweep and the queue may bring the same order. Before the
            # commands just popped: what the sweep finds was accepted before them (or is among them).
            self.sweep(min_age=timedelta(seconds=self.sweep_seconds))
        if expiring or commands:
            self.process(expiring + commands)
        return len(commands) + len(expiring)

    def heartbeat(self, *, force: bool = False) -> None:
        """Once a second: prove the lock is still ours, and tell the web processes the shard is alive."""
        now = time.monotonic()
        if not force and now - self.last_beat < HEARTBEAT_SECONDS:
            return
        self.last_beat = now
        self.lock_check()
        self._redis_quietly(
            lambda c: queue.shard_alive_mark(shard=self.shard, pid=os.getpid(), seconds=self.alive_seconds)
        )

    def _redis_quietly(self, action) -> None:
        try:
            action(redis_.client())
        except Exception:  # noqa: BLE001 - Redis down: matching goes on from the database
            self.redis_trouble(logging.WARNING, "shard %s: Redis does not answer", self.shard)

    def _due_expiries(self) -> list[tuple[str, int]]:
        if not self.expiries or self.expiries[0][0] > timezone.now():
            return []
        now = timezone.now()
        due = []
        while self.expiries and self.expiries[0][0] <= now:
            _, order_id = heapq.heappop(self.expiries)
            if order_id in self.live:  # not filled or canceled meanwhile
                due.append((queue.EXPIRE, order_id))
        return due

    def sweep(self, *, min_age: timedelta) -> None:
        """Pending orders and cancel requests the queue did not bring (lost with Redis, or a crash)."""
        self._check_committer()
        self.last_sweep = time.monotonic()
        commands = self._swept_commands(min_age=min_age)
        for start in range(0, len(commands), self.batch_size):
            self.process(commands[start : start + self.batch_size])
        if commands:
            log.info("shard %s: sweep processed %d commands", self.shard, len(commands))

    def _swept_commands(self, *, min_age: timedelta) -> list[tuple[str, int]]:
        close_old_connections()
        resumed = self.load_markets()
        halted = [market_id for market_id, state in self.markets.items() if state.halted]
        cutoff = timezone.now() - min_age
        # A resumed market's orders are all due now: their queue messages came while it was halted.
        pending = list(
            Order.objects.filter(market__shard=self.shard, status=Order.Status.PENDING)
            .filter(Q(created_at__lte=cutoff) | Q(market_id__in=resumed))
            .exclude(market_id__in=halted)
            .order_by("id")
            .values_list("created_at", "id")[:100000]
        )
        cancels = list(
            Order.objects.filter(
                market__shard=self.shard, status__in=(Order.Status.PENDING, *LIVE), cancel_requested_at__lte=cutoff
            )
            .order_by("cancel_requested_at", "id")
            .values_list("cancel_requested_at", "id")
        )
        # Places and cancels in the order they were accepted, as the queue would have brought them.
        return [
            (kind, order_id)
            for _, _, kind, order_id in sorted(
                [(at, 0, queue.PLACE, order_id) for at, order_id in pending]
                + [(at, 1, queue.CANCEL, order_id) for at, order_id in cancels]
            )
        ]

    # --- failures ---------------------------------------------------------------------------

    def drain(self) -> None:
        """Wait until every matched batch is committed (or failed), and deal with a failure."""
        if self.committer is None:
            return
        self.committer.queue.join()
        self._check_committer()

    def _check_committer(self) -> None:
        if self.committer is None or not self.committer.failed.is_set():
            return
        self.committer.queue.join()
        error = self.committer.error
        self.committer.reset()
        self._failed(error)

    def _failed(self, error: BaseException | None) -> None:
        """A batch was not written. Lost lock or database: stop. Refused: find the order and isolate it."""
        if isinstance(error, ShardLockLost):
            raise error
        if database_down(error):
            raise ShardLockLost(f"shard {self.shard}: the database went away ({error})") from error
        log.error("shard %s: a batch failed (%r); replaying the pending commands carefully", self.shard, error)
        self.recover(careful=True)

    def recover(self, *, careful: bool = False) -> None:
        # The engine is ahead of the database: start again from the record. The orders of the lost
        # batches are still pending there, and the sweep brings them back.
        if self.committer is not None:
            self.committer.queue.join()
            error = self.committer.error
            self.committer.reset()
            if isinstance(error, ShardLockLost) or database_down(error):
                raise ShardLockLost(f"shard {self.shard}: {error}") from error
        self.in_flight.clear()
        self.rebuild()
        if careful:
            self.replay_carefully()
        self.last_sweep = 0.0

    def replay_carefully(self) -> None:
        """Every pending command again, in small batches committed at once; one by one within a batch
        that fails, so the command that fails is isolated."""
        commands = self._swept_commands(min_age=timedelta(0))
        for start in range(0, len(commands), CAREFUL_BATCH_SIZE):
            chunk = commands[start : start + CAREFUL_BATCH_SIZE]
            self.heartbeat()
            try:
                self._process(chunk, sync=True)
                continue
            except Exception as exc:
                if isinstance(exc, ShardLockLost) or database_down(exc):
                    raise
                log.warning("shard %s: a batch of %d commands failed again; one by one", self.shard, len(chunk))
                self.in_flight.clear()
                self.rebuild()  # the engine applied what the database refused
            for command in chunk:
                self._process_alone(command)

    def _process_alone(self, command: tuple[str, int]) -> None:
        self.heartbeat()
        try:
            self._process([command], sync=True)
        except Exception as exc:
            if isinstance(exc, ShardLockLost) or database_down(exc):
                raise
            kind, order_id = command
            log.exception("shard %s: command %s:%s cannot be settled", self.shard, kind, order_id)
            self.in_flight.clear()
            self.rebuild()
            if kind == queue.PLACE:
                self._reject_alone(order_id)
            else:
                self.poisoned.add(order_id)

    def _reject_alone(self, order_id: int) -> None:
        """Settle one pending order as rejected in its own transaction (its hold is released)."""
        try:
            rows = pending_orders([order_id])
            if not rows:
                return
            order = rows[0]
            order.status, order.remaining, order.reject_reason = REJECTED, ZERO, R_INVALID
            batch = Batch()
            batch.orders[order.id] = order
            self._settle(batch, {}, commands=1, sync=True)
            log.warning("shard %s: order %s rejected alone (%s)", self.shard, order_id, R_INVALID)
        except Exception as exc:
            if isinstance(exc, ShardLockLost) or database_down(exc):
                raise
            # Not even a rejection can be written: leave the row pending for an operator, and go on.
            log.exception("shard %s: order %s cannot even be rejected; left pending and skipped", self.shard, order_id)
            self.poisoned.add(order_id)

    # --- one batch --------------------------------------------------------------------------

    def process(self, commands: list[tuple[str, int]]) -> None:
        """Commands in queue order; a market status change splits them, so it applies exactly there."""
        self._check_committer()
        self.heartbeat()
        segment: list[tuple[str, int]] = []
        for command in commands:
            if command[0] != queue.MARKET_STATUS:
                segment.append(command)
                continue
            self._process_guarded(segment)
            segment = []
            resumed = self._market_status_changed(command[1])
            for start in range(0, len(resumed), self.batch_size):
                self._process_guarded(resumed[start : start + self.batch_size])
        self._process_guarded(segment)

    def _process_guarded(self, commands: list[tuple[str, int]]) -> None:
        if not commands:
            return
        try:
            self._process(commands)
        except Exception as exc:
            if isinstance(exc, ShardLockLost) or database_down(exc):
                raise
            log.exception("shard %s: a batch cannot be matched or settled", self.shard)
            self._failed(exc)

    def _market_status_changed(self, market_id: int) -> list[tuple[str, int]]:
        """Apply a halt or resume; on resume, the market's pending orders in their order."""
        resumed = self.load_markets()
        if market_id not in resumed:
            return []
        log.info("shard %s: market %s resumed", self.shard, self.markets[market_id].market.symbol)
        ids = Order.objects.filter(market_id=market_id, status=Order.Status.PENDING).order_by("id")
        return [(queue.PLACE, order_id) for order_id in ids.values_list("id", flat=True)]

    def _process(self, commands: list[tuple[str, int]], *, sync: bool = False) -> None:
        started = time.perf_counter()
        ids = {order_id for _, order_id in commands} - self.live.keys() - self.in_flight - self.poisoned
        rows = {order.id: order for order in pending_orders(ids)}
        batch = Batch()
        touched: dict[int, set[tuple[str, int]]] = defaultdict(set)  # market id -> {(side, price ticks)}
        for kind, order_id in commands:
            if order_id in self.poisoned:
                continue
            if kind == queue.PLACE:
                order = rows.pop(order_id, None)
                if order is None:
                    continue  # settled already, in flight, or not ours
                self._place(order, batch, touched)
            elif kind == queue.CANCEL:
                self._cancel(order_id, rows, batch, touched)
            elif kind == queue.EXPIRE:
                self._expire(order_id, batch, touched)
        if batch.orders:
            self._settle(batch, touched, commands=len(commands), sync=sync, started=started)

    def _settle(self, batch: Batch, touched, *, commands: int, sync: bool, started: float | None = None) -> None:
        markets = {market_id: state.market for market_id, state in self.markets.items()}
        prepared = batch_prepare(batch=batch, markets=markets, account_ids=self.account_ids)
        # What the world sees after the commit is taken now: the engine moves on meanwhile.
        item = CommitItem(prepared, self._events_after(batch, touched), set(batch.orders), commands)
        if started is not None:
            item.match_seconds = time.perf_counter() - started
        self.in_flight |= item.order_ids
        if self.committer is None or sync:
            self.commit(item)
        else:
            self.committer.queue.put(item)

    def commit(self, item: CommitItem) -> None:
        started = time.perf_counter()
        trades = batch_write(prepared=item.prepared, fence=self.fence())
        item.commit_seconds = time.perf_counter() - started
        self.in_flight -= item.order_ids
        self.stats["batches"] += 1
        self.stats["commands"] += item.commands
        self.stats["trades"] += len(trades)
        if self.publisher is None:
            self._after_commit(item, trades)
        else:
            self.publisher.queue.put((item, trades))

    def _place(self, taker: LiveOrder, batch: Batch, touched) -> None:
        state = self.markets.get(taker.market_id)
        if state is None:
            self.load_markets()
            state = self.markets.get(taker.market_id)
            if state is None:
                return  # the market moved to another shard
        if state.halted:
            return  # stays pending, untouched; matched in its turn when the market resumes
        batch.orders[taker.id] = taker
        self.order_sequence += 1
        taker.sequence = self.order_sequence
        try:
            trades, updates = state.book.place(**self._engine_order(state, taker))
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is this order's alone
            # The engine checks everything before it changes the book, so the book is as it was.
            log.warning("shard %s: order %s rejected, the engine cannot process it: %s", self.shard, taker.id, exc)
            trades, updates = [], [OrderUpdate(taker.id, taker.user_id, REJECTED, 0, 0, 0, R_INVALID)]
        self._apply(state, trades, updates, batch, touched, incoming=taker)
        if taker.expire_at is not None and taker.status in LIVE:
            heapq.heappush(self.expiries, (taker.expire_at, taker.id))

    @staticmethod
    def _engine_order(state: MarketState, taker: LiveOrder) -> dict:
        """The order in the engine's integer units (raises on what cannot be converted)."""
        market = taker.type == MARKET
        limit = taker.protection_price if market else taker.price
        return {
            "order_id": taker.id,
            "owner": taker.user_id,
            "side": taker.side,
            "price": state.ticks(limit) if limit is not None else None,
            "quantity": state.lots(taker.quantity) if taker.quantity is not None else None,
            "quote_budget": int(taker.quote_quantity / state.notional_unit)
            if taker.quote_quantity is not None
            else None,
            # A GTD order rests like a GTC one; the worker expires it at expire_at.
            "tif": GTC if taker.time_in_force == GTD else taker.time_in_force,
            "post_only": taker.post_only,
            "stp": taker.stp,
            "market": market,
        }

    def _cancel(self, order_id: int, rows: dict[int, LiveOrder], batch: Batch, touched) -> None:
        row = rows.pop(order_id, None)
        if row is not None:
            state = self.markets.get(row.market_id)
            if state is not None and state.halted:
                # Halted: the order never meets the book; the cancel ends it where it is.
                batch.orders[row.id] = row
                row.status, row.remaining, row.reject_reason = CANCELED, ZERO, R_USER
                return
            # The order's own command was lost (Redis) but it was accepted before this cancel:
            # it meets the book first, as it would have, and the cancel applies to what rests.
            self._place(row, batch, touched)
        live = self.live.get(order_id)
        if live is None:
            return  # already done: filled, expired, canceled
        state = self.markets[live.market_id]
        trades, updates = state.book.cancel(order_id=order_id)
        self._apply(state, trades, updates, batch, touched, incoming=None)

    def _expire(self, order_id: int, batch: Batch, touched) -> None:
        live = self.live.get(order_id)
        if live is None:
            return
        state = self.markets[live.market_id]
        trades, updates = state.book.cancel(order_id=order_id)
        updates = [
            OrderUpdate(u.order_id, u.owner, EXPIRED, u.filled, 0, u.spent, R_GTD) if u.status == CANCELED else u
            for u in updates
        ]
        self._apply(state, trades, updates, batch, touched, incoming=None)

    def _apply(self, state: MarketState, trades, updates, batch: Batch, touched, incoming: LiveOrder | None) -> None:
        tick, lot = state.tick, state.lot
        for trade in trades:
            maker = self.live[trade.maker_id]
            batch.orders[maker.id] = maker
            price = trade.price * tick
            quantity = trade.quantity * lot
            for order in (maker, incoming):
                order.filled_quantity += quantity
                order.filled_quote += price * quantity
            batch.fills.append(Fill(state.market, state.next_trade_sequence, maker, incoming, price, quantity))
            state.next_trade_sequence += 1
            touched[state.market.id].add((maker.side, trade.price))
        for update in updates:
            if update.status == "rejected" and update.reason == "unknown_order":
                continue
            order = (
                incoming if incoming is not None and update.order_id == incoming.id else self.live.get(update.order_id)
            )
            if order is None:
                continue
            batch.orders[order.id] = order
            order.status = update.status
            order.remaining = update.remaining * lot
            if update.reason and update.status not in LIVE:
                order.reject_reason = update.reason
            if order.price is not None and update.status != REJECTED:
                touched[state.market.id].add((order.side, state.ticks(order.price)))
            if update.status in LIVE:
                self.live[order.id] = order
            else:
                self.live.pop(order.id, None)

    # --- after the commit -------------------------------------------------------------------

    def _publish_top(self, state: MarketState) -> None:
        bid, ask = state.book.best_bid(), state.book.best_ask()
        mapping = {"bid": dec(bid * state.tick) if bid else "", "ask": dec(ask * state.tick) if ask else ""}
        redis_.client().hset(queue.top_of_book_key(state.market.symbol), mapping=mapping)

    def _events_after(self, batch: Batch, touched) -> dict:
        tops = {}
        depth_changes = {}
        for market_id, levels in touched.items():
            state = self.markets[market_id]
            bid, ask = state.book.best_bid(), state.book.best_ask()
            tops[state.market.symbol] = {
                "bid": dec(bid * state.tick) if bid else "",
                "ask": dec(ask * state.tick) if ask else "",
            }
            if not self.publish_events:
                continue
            changes = {"bids": [], "asks": []}
            for side, price in sorted(levels):
                quantity = state.book.level_quantity(side=side, price=price)
                changes["bids" if side == BUY else "asks"].append((dec(price * state.tick), dec(quantity * state.lot)))
            depth_changes[state.market.symbol] = changes
        orders: dict[int, list[dict]] = defaultdict(list)
        streaming: set[int] = set()
        if self.publish_events and batch.orders:
            try:
                streaming = presence.users_streaming(user_ids={order.user_id for order in batch.orders.values()})
            except Exception:  # noqa: BLE001 - Redis down: nothing can be published anyway
                self.redis_trouble(logging.WARNING, "shard %s: cannot read which users are streaming", self.shard)
            updated_at = iso(next(iter(batch.orders.values())).updated_at)  # one stamp per batch
            for order in batch.orders.values():
                if order.user_id not in streaming:
                    continue
                if order.fixed_data is None:
                    order.fixed_data = order_fixed_data(order, symbol=self.markets[order.market_id].market.symbol)
                orders[order.user_id].append({**order.fixed_data, **order_state_data(order, updated_at=updated_at)})
        return {"tops": tops, "depth_changes": depth_changes, "orders": dict(orders), "streaming": streaming}

    def _after_commit(self, item: CommitItem, trades: list[SettledTrade]) -> None:
        shard_batch_record(
            shard=self.shard,
            size=item.commands,
            trades=len(trades),
            match_seconds=item.match_seconds,
            commit_seconds=item.commit_seconds,
        )
        events = item.events
        try:
            client = redis_.client()
            for symbol, top in events["tops"].items():
                client.hset(queue.top_of_book_key(symbol), mapping=top)
            if not self.publish_events:
                return
            public_trades: dict[str, list[dict]] = defaultdict(list)
            fills: dict[int, list[dict]] = defaultdict(list)
            for trade in trades:
                market = trade.market
                public_trades[market.symbol].append(trade_public_data(trade))
                for user_id in {trade.maker_user_id, trade.taker_user_id} & events["streaming"]:
                    fills[user_id] += fills_of_trade(
                        trade,
                        user_id=user_id,
                        symbol=market.symbol,
                        base_code=market.base.code,
                        quote_code=market.quote.code,
                    )
            publish.batch_publish(
                depth_changes=events["depth_changes"],
                trades=dict(public_trades),
                orders=events["orders"],
                fills=dict(fills),
                balance_users=set(events["orders"]) | set(fills),
            )
        except Exception:  # the batch is committed; a lost event must not stop matching
            self.redis_trouble(
                logging.WARNING, "shard %s: publishing a settled batch failed", self.shard, exc_info=True
            )


@dataclass(slots=True)
class CommitItem:
    prepared: PreparedBatch
    events: dict
    order_ids: set[int]
    commands: int
    match_seconds: float = 0.0
    commit_seconds: float = 0.0


class Committer(threading.Thread):
    """Writes matched batches in order on its own connection while the shard matches the next one.

    The database round trips of batch N overlap the matching of batch N+1. After a failure it
    keeps the error and skips what is queued until the matching thread has dealt with it
    (ShardWorker._check_committer) and called ``reset``.
    """

    def __init__(self, worker: ShardWorker):
        super().__init__(name=f"shard-{worker.shard}-commit", daemon=True)
        self.worker = worker
        # One batch waits while one commits: a shard further ahead only queues small batches behind a
        # commit (latency), where waiting lets the next batch gather what arrives meanwhile.
        self.queue: Queue[CommitItem | None] = Queue(maxsize=1)
        self.failed = threading.Event()
        self.error: BaseException | None = None
        # Set when the shard stood down: the connection may be one to a database that went away.
        self.reconnect = threading.Event()

    def run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    connection.close()
                    return
                if self.reconnect.is_set():
                    self.reconnect.clear()
                    _close_quietly()
                if not self.failed.is_set():
                    self.worker.commit(item)
            except Exception as exc:
                if not (isinstance(exc, ShardLockLost) or database_down(exc)):
                    log.exception("shard %s: committing a batch failed", self.worker.shard)
                self.error = exc
                self.failed.set()
                _close_quietly()
            finally:
                self.queue.task_done()

    def reset(self) -> None:
        """Called by the matching thread with the queue drained: commit again from the next item."""
        self.error = None
        self.failed.clear()

    def close(self) -> None:
        self.queue.put(None)
        self.join(timeout=60)


class Publisher(threading.Thread):
    """Sends each committed batch's events, in commit order."""

    def __init__(self, worker: ShardWorker):
        super().__init__(name=f"shard-{worker.shard}-publish", daemon=True)
        self.worker = worker
        self.queue: Queue[tuple[CommitItem, list[SettledTrade]] | None] = Queue()

    def run(self) -> None:
        while True:
            entry = self.queue.get()
            try:
                if entry is None:
                    connection.close()
                    return
                self.worker._after_commit(*entry)
            finally:
                self.queue.task_done()

    def close(self) -> None:
        self.queue.put(None)
        self.join(timeout=60)
