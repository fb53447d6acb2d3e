"""The shard worker: the adapter between Redis, the pure engine and the database.

One process per shard (a Celery worker started with ``--shard K``, see matching/celery_step.py)
owns the books of the markets whose ``shard`` is K; a MariaDB named lock makes sure no second
process matches them. It reads commands from the shard's Redis queue in batches, runs them through
the engine, settles the batch in ONE transaction (orders/settlement.py) and publishes events only
after the commit.

Recovery: the database is the record. On start the worker rebuilds each book from the open orders
in their priority (``Order.sequence``), then processes every pending order and cancel request it
finds, skipping what is already settled (a command whose order is no longer pending is a no-op).
The same sweep runs every few seconds, so an order whose queue message was lost with Redis is
still matched.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import Decimal
from functools import lru_cache
from queue import Queue

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Max
from django.utils import timezone

from exchange_site import redis as redis_
from exchange_site.services_check import server_connect
from marketdata import presence, publish
from monitoring.recorders import shard_batch_record
from orders.models import Market, Order, Trade
from orders.serializers import dec, fills_of_trade, iso, order_fixed_data, order_state_data, trade_public_data
from orders.settlement import Batch, Fill, LiveOrder, PreparedBatch, SettledTrade, batch_prepare, batch_write

from . import queue
from .engine import OrderBook

log = logging.getLogger("matching.shard")

LIVE = (Order.Status.OPEN.value, Order.Status.PARTIALLY_FILLED.value)
BUY, MARKET = Order.Side.BUY.value, Order.Type.MARKET.value
CONVERSION_CACHE_SIZE = 100_000
GIL_SWITCH_SECONDS = 0.001
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
)


# What settlement writes: a pending order has none of it yet, so it is not read, only set.
SETTLED_FIELDS = ("updated_at", "status", "filled_quantity", "filled_quote", "sequence", "reject_reason")
PENDING_FIELDS = tuple(field for field in LIVE_FIELDS if field not in SETTLED_FIELDS)
ZERO = Decimal(0)


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
        order.post_only = bool(order.post_only)
        out.append(order)
    return out


class ShardLockTaken(RuntimeError):
    pass


class MarketState:
    """A market's book plus the unit conversions between the engine's integers and Decimals."""

    def __init__(self, market: Market):
        self.market = market
        self.book = OrderBook(market.symbol)
        self.tick = market.tick_size
        self.lot = market.lot_size
        self.notional_unit = market.tick_size * market.lot_size
        self.next_trade_sequence = 1
        # Remembered: a Decimal division per order and fill is a measurable share of a batch, and
        # prices and sizes repeat.
        self.ticks = lru_cache(maxsize=CONVERSION_CACHE_SIZE)(self._ticks)
        self.lots = lru_cache(maxsize=CONVERSION_CACHE_SIZE)(self._lots)

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
        self.publish_events = publish_events
        self.markets: dict[int, MarketState] = {}
        self.by_symbol: dict[str, MarketState] = {}
        self.live: dict[int, LiveOrder] = {}  # resting orders
        self.account_ids: dict[tuple[int | None, int, str], int] = {}  # ledger accounts settlement has used
        self.order_sequence = 0
        self.lock_connection = None
        self.last_sweep = 0.0
        self.stats = {"batches": 0, "commands": 0, "trades": 0}
        # Orders of batches matched but not yet committed: the database still shows them pending.
        self.in_flight: set[int] = set()
        self.committer = Committer(self) if pipelined else None
        # Events of committed batches go out from a third thread, off the committing path.
        self.publisher = Publisher(self) if pipelined else None

    # --- start-up -------------------------------------------------------------------------

    def acquire_lock(self) -> None:
        db = settings.DATABASES["default"]
        self.lock_connection = server_connect(db, database=db["NAME"])
        name = f"{db['NAME']}:shard:{self.shard}"
        with self.lock_connection.cursor() as cursor:
            # Held for the life of this connection: if the process dies, MariaDB releases it.
            cursor.execute("SELECT GET_LOCK(%s, 10)", [name])
            (got,) = cursor.fetchone()
        if got != 1:
            raise ShardLockTaken(f"another process owns shard {self.shard}")

    def release_lock(self) -> None:
        if self.lock_connection is not None:
            self.lock_connection.close()
            self.lock_connection = None

    def load_markets(self) -> None:
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
                self.markets[market.pk].market = market

    def rebuild(self) -> None:
        """Books from the database: open orders in their original priority."""
        self.markets.clear()
        self.by_symbol.clear()
        self.live.clear()
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
            state = self.markets[live.market_id]
            live.remaining = live.quantity - live.filled_quantity
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
            self.live[live.id] = live
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
                log.exception("shard %s: cannot publish the depth of %s", self.shard, state.market.symbol)
        log.info("shard %s: rebuilt %d markets, %d resting orders", self.shard, len(self.markets), len(self.live))

    def start(self) -> None:
        self.acquire_lock()
        self.rebuild()
        self.sweep(min_age=timedelta(0))
        redis_.client().set(redis_.key("shard", self.shard, "ready"), os.getpid())

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        if self.committer is not None:
            # The committing thread makes a dozen database round trips per batch and, after each,
            # waits for the GIL that the matching thread holds; the default 5 ms switch interval
            # makes that wait the largest part of a commit. This process is the shard's alone.
            sys.setswitchinterval(GIL_SWITCH_SECONDS)
            self.committer.start()
            self.publisher.start()
        self.start()
        try:
            while not stop.is_set():
                self.step(timeout=0.5)
        finally:
            if self.committer is not None:
                self.committer.close()
                self.publisher.close()
            redis_.client().delete(redis_.key("shard", self.shard, "ready"))
            self.release_lock()
            connection.close()

    def step(self, timeout: float = 0.5) -> int:
        try:
            commands = queue.commands_pop(shard=self.shard, count=self.batch_size, timeout=timeout)
        except Exception:  # Redis down: keep matching from the database sweep until it is back
            log.exception("shard %s: cannot read the Redis queue", self.shard)
            commands = []
            time.sleep(timeout)
        if commands:
            self.process(commands)
        if time.monotonic() - self.last_sweep > self.sweep_seconds and self._queue_is_empty():
            self.sweep(min_age=timedelta(seconds=self.sweep_seconds))
        return len(commands)

    def _queue_is_empty(self) -> bool:
        # Sweep only when the queue is drained: under load, the queue brings orders in their order.
        try:
            return redis_.client().llen(queue.queue_key(self.shard)) == 0
        except Exception:  # noqa: BLE001 - Redis down: the sweep is the only way orders arrive
            return True

    def sweep(self, *, min_age: timedelta) -> None:
        """Pending orders and cancel requests the queue did not bring (lost with Redis, or a crash)."""
        self.drain()
        self.last_sweep = time.monotonic()
        close_old_connections()
        self.load_markets()
        cutoff = timezone.now() - min_age
        pending = list(
            Order.objects.filter(market__shard=self.shard, status=Order.Status.PENDING, created_at__lte=cutoff)
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
        commands = [
            (kind, order_id)
            for _, _, kind, order_id in sorted(
                [(at, 0, queue.PLACE, order_id) for at, order_id in pending]
                + [(at, 1, queue.CANCEL, order_id) for at, order_id in cancels]
            )
        ]
        for start in range(0, len(commands), self.batch_size):
            self.process(commands[start : start + self.batch_size])
        if commands:
            log.info(
                "shard %s: sweep processed %d pending and %d cancel requests", self.shard, len(pending), len(cancels)
            )

    # --- one batch --------------------------------------------------------------------------

    def drain(self) -> None:
        """Wait until every matched batch is committed (or failed); rebuild if one failed."""
        if self.committer is None:
            return
        self.committer.queue.join()
        if self.committer.failed.is_set():
            self.recover()

    def recover(self) -> None:
        # The engine is ahead of the database: start again from the record. The orders of the lost
        # batches are still pending there, and the sweep brings them back.
        log.error("shard %s: a batch failed; rebuilding from the database", self.shard)
        if self.committer is not None:
            self.committer.queue.join()
            self.committer.failed.clear()
        self.in_flight.clear()
        connection.close()
        time.sleep(0.5)
        self.rebuild()
        self.last_sweep = 0.0

    def process(self, commands: list[tuple[str, int]]) -> None:
        if self.committer is not None and self.committer.failed.is_set():
            self.recover()
        try:
            self._process(commands)
        except Exception:
            log.exception("shard %s: matching a batch failed", self.shard)
            self.drain()
            self.recover()

    def _process(self, commands: list[tuple[str, int]]) -> None:
        started = time.perf_counter()
        ids = {order_id for _, order_id in commands} - self.live.keys() - self.in_flight
        rows = {order.id: order for order in pending_orders(ids)}
        batch = Batch()
        touched: dict[int, set[tuple[str, int]]] = defaultdict(set)  # market id -> {(side, price ticks)}
        for kind, order_id in commands:
            if kind == queue.PLACE:
                order = rows.pop(order_id, None)
                if order is None:
                    continue  # settled already, in flight, or not ours
                self._place(order, batch, touched)
            elif kind == queue.CANCEL:
                self._cancel(order_id, rows, batch, touched)
        if not batch.orders:
            return
        markets = {market_id: state.market for market_id, state in self.markets.items()}
        prepared = batch_prepare(batch=batch, markets=markets, account_ids=self.account_ids)
        # What the world sees after the commit is taken now: the engine moves on meanwhile.
        item = CommitItem(prepared, self._events_after(batch, touched), set(batch.orders), len(commands))
        item.match_seconds = time.perf_counter() - started
        self.in_flight |= item.order_ids
        if self.committer is None:
            self.commit(item)
        else:
            self.committer.queue.put(item)

    def commit(self, item: CommitItem) -> None:
        started = time.perf_counter()
        trades = batch_write(prepared=item.prepared)
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
        batch.orders[taker.id] = taker
        self.order_sequence += 1
        taker.sequence = self.order_sequence
        market = taker.type == MARKET
        limit = taker.protection_price if market else taker.price
        trades, updates = state.book.place(
            order_id=taker.id,
            owner=taker.user_id,
            side=taker.side,
            price=state.ticks(limit) if limit is not None else None,
            quantity=state.lots(taker.quantity) if taker.quantity is not None else None,
            quote_budget=int(taker.quote_quantity / state.notional_unit) if taker.quote_quantity is not None else None,
            tif=taker.time_in_force,
            post_only=taker.post_only,
            stp=taker.stp,
            market=market,
        )
        self._apply(state, trades, updates, batch, touched, incoming=taker)

    def _cancel(self, order_id: int, rows: dict[int, LiveOrder], batch: Batch, touched) -> None:
        row = rows.pop(order_id, None)
        if row is not None:
            # The order's own command was lost (Redis) but it was accepted before this cancel:
            # it meets the book first, as it would have, and the cancel applies to what rests.
            self._place(row, batch, touched)
        live = self.live.get(order_id)
        if live is None:
            return  # already done: filled, expired, canceled
        state = self.markets[live.market_id]
        trades, updates = state.book.cancel(order_id=order_id)
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
            if order.price is not None:
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
                log.exception("shard %s: cannot read which users are streaming", self.shard)
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
            log.exception("shard %s: publishing a settled batch failed", self.shard)


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
    skips what is queued; the shard then rebuilds from the database (ShardWorker.recover).
    """

    def __init__(self, worker: ShardWorker):
        super().__init__(name=f"shard-{worker.shard}-commit", daemon=True)
        self.worker = worker
        # One batch waits while one commits: a shard further ahead only queues small batches behind a
        # commit (latency), where waiting lets the next batch gather what arrives meanwhile.
        self.queue: Queue[CommitItem | None] = Queue(maxsize=1)
        self.failed = threading.Event()

    def run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    connection.close()
                    return
                if not self.failed.is_set():
                    self.worker.commit(item)
            except Exception:
                log.exception("shard %s: committing a batch failed", self.worker.shard)
                self.failed.set()
                connection.close()
            finally:
                self.queue.task_done()

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
