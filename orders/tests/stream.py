"""A seeded random stream of orders through the real HTTP API, web tier and shard, with crashes.

Many users trade in several markets with every kind of order (limit GTC/IOC/FOK, post-only, market
by quantity and by quote, all STP modes) and cancel, while the shard process and web processes are
SIGKILLed and restarted and Redis is flushed. Afterwards the outcome is checked against the
reference model (matching/tests/reference_model.py): the accepted orders and cancels of each market,
replayed in the order they were accepted, must give the same trades (price, quantity, maker,
taker), the same final order states and the same book; every fee is the market's rate of its
trade, the fee accounts hold their sum, every user's money is their deposit plus what their trades
say, and every ledger and hold invariant holds.

Most orders go in batches (``POST /orders/batch``, placed in list order), the rest as single POSTs;
cancels by id, by client id and cancel-all, and deliberate client_order_id replays are mixed in by
the seed. A request whose answer is lost (its web process was killed) is sent again at once, as a
client would: a replay of a still-pending order, or a cancel asked again, is queued again by the
web tier, so no client ever waits for the engine and the engine still sees acceptance order.

Threads: one client thread per market (its own HTTP connections, one per user) sends that market's
requests one after another, so within a market the order of acceptance is the order of sending;
markets are independent books, so their threads run at once and meet only on the users' balance
rows. The calling thread injects the faults (``Chaos``), at points of the stream drawn from the
seed. Each thread owns its ``MarketRun``; the shared ``Figures`` counters are behind a lock.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import requests
from django.db import connection
from django.db.models import Count, Sum

from accounts.services import token_create
from exchange_site.testing import HttpClient
from ledger.models import LedgerAccount, Transfer
from ledger.selectors import balances_for_users, ledger_problems
from ledger.services import asset_get_or_create, funds_deposit
from matching.tests.reference_model import RefBook
from orders.models import Market, Order, Trade
from orders.selectors import hold_problems
from orders.settlement import fee_of

# symbol, tick, lot, maker fee, taker fee, mid price (in ticks), lots per order (low, high)
MARKET_SPECS = [
    ("BTC-USD", "0.01", "0.001", "0.001", "0.002", 10000, (10, 300)),
    ("ETH-USD", "0.05", "0.01", "0", "0.0025", 1000, (2, 200)),
    ("SOL-USD", "0.001", "0.1", "0.0005", "0.001", 20000, (1, 50)),
    ("ADA-USD", "0.0001", "10", "0.001", "0.001", 5000, (1, 60)),
    ("DOT-USD", "0.01", "0.01", "0.0002", "0.0007", 700, (10, 400)),
    ("XRP-USD", "0.0001", "1", "0.001", "0.003", 6000, (10, 500)),
]
DEPOSIT = Decimal("100000000")  # of every asset: refusals for lack of funds stay rare
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass
class Figures:
    sent: int = 0  # order requests, each with a new client_order_id
    accepted: int = 0
    replayed: int = 0  # answered 200: a retry after a lost answer, or a deliberate replay
    replays_sent: int = 0  # orders sent again on purpose with their client_order_id
    cancels: int = 0  # cancels recorded (each order once)
    requests: Counter = field(default_factory=Counter)  # by kind: batch, single, cancel, ...
    retries: int = 0
    codes: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)
    kills: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, **increments) -> None:
        with self.lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def tally(self, counter: str, key) -> None:
        with self.lock:
            getattr(self, counter)[key] += 1


# What one step of a market's client does, drawn from the seed. Most orders travel in batches
# (placed in list order, so acceptance order is still sending order); single POSTs, cancels by id
# and by client id, cancel-all and deliberate client_order_id replays keep every door in the stream.
STEP_KINDS = ("batch", "single", "cancel", "cancel_by_client_id", "cancel_all", "replay")
STEP_WEIGHTS = (50, 10, 26, 8, 2, 4)
BATCH_SIZES = (2, 50)


class MarketRun:
    """One market's client thread: sends its share of the stream and logs what was accepted."""

    def __init__(self, *, market: Market, spec, users, keys, url: str, seed: int, orders: int, figures: Figures):
        self.market = market
        _, _, _, _, _, self.mid, self.lots = spec
        self.users = users
        self.clients = {user.pk: HttpClient(url, keys[user.pk]) for user in users}
        self.rng = random.Random(f"{seed}:{market.symbol}")
        self.orders = orders
        self.figures = figures
        self.log: list[tuple[str, int]] = []  # ("n", order id) placed, ("c", order id) cancel accepted
        self.open: list[tuple[int, int, str]] = []  # (order id, user id, client id) of GTC orders that may rest
        self.canceled: set[int] = set()
        self.placed: dict[str, int] = {}  # client_order_id -> the order it placed
        self.recent: list[tuple[int, list[dict]]] = []  # (user id, bodies) of accepted requests, to replay
        self.steps = 0  # orders sent (the faults are placed by this count)
        self.sent_requests = 0
        self.last_send = ""  # how the last request went: for the report of a problem
        self.trace: dict[int, str] = {}  # order id -> how its request went
        self.deadline = float("inf")  # monotonic time after which no more orders are sent
        self.prefix = f"s{seed}-{market.symbol.split('-')[0]}-"

    # --- requests ---------------------------------------------------------------------------

    def send(self, user_id: int, method: str, path: str, body: dict | None = None):
        """The request until it gets an answer: a web process killed mid-request drops the connection.

        Returns (response, lost): ``lost`` when an earlier attempt got no answer, so it may have
        been committed with its queue push never made (the process died in between). Sending it
        again is the client's side of the fix: a placement replayed by its client_order_id, or a
        cancel asked again, is queued again at once, ahead of anything this client sends next.
        """
        client = self.clients[user_id]
        self.sent_requests += 1
        started, errors = time.monotonic(), []
        for attempt in range(200):
            try:
                answered = client.post(path, body) if method == "POST" else client.delete(path)
                self.last_send = (
                    f"request {self.sent_requests} {method} {path} user {user_id}: {answered.status_code} after "
                    f"{errors or 'no error'}, {started:.3f} to {time.monotonic():.3f}"
                )
                return answered, attempt > 0
            except TRANSIENT as exc:
                errors.append(f"{type(exc).__name__} at {time.monotonic():.3f}")
                self.figures.count(retries=1)
                client.session.close()  # a fresh connection, accepted by a live process
        raise RuntimeError(f"{method} {path}: no answer after 200 attempts")

    def order_body(self, side: str | None = None) -> dict:
        rng, market = self.rng, self.market
        side = side or rng.choice(("buy", "sell"))
        kind = rng.choices(
            ("gtc", "ioc", "fok", "post", "market_qty", "market_quote"), weights=(44, 10, 8, 12, 16, 10)
        )[0]
        body = {
            "symbol": market.symbol,
            "side": side,
            "stp": rng.choices(("cancel_newest", "cancel_oldest", "cancel_both", "none"), weights=(4, 2, 2, 2))[0],
        }
        quantity = market.lot_size * rng.randint(*self.lots)
        if kind in ("market_qty", "market_quote"):
            body["type"] = "market"
            body["time_in_force"] = rng.choice(("IOC", "IOC", "FOK"))
            if kind == "market_quote":
                body["side"] = "buy"
                notional = market.tick_size * self.mid * quantity
                body["quote_quantity"] = str(notional.quantize(Decimal("0.01")) + Decimal("0.01"))
            else:
                body["quantity"] = str(quantity)
            return body
        # Buyers bid around the mid and sellers ask around it: about half the orders cross.
        offset = rng.randint(-8, 8)
        body.update(
            type="limit",
            price=str(market.tick_size * (self.mid + offset)),
            quantity=str(quantity),
            time_in_force={"gtc": "GTC", "post": "GTC", "ioc": "IOC", "fok": "FOK"}[kind],
            post_only=kind == "post",
        )
        return body

    def place(self, count: int) -> None:
        """``count`` new orders of one user: one POST /orders, or one POST /orders/batch.

        A batch is one side's orders (market buys by quote aside), as a bot quoting or taking sends
        them: a user's buys and sells in one batch would mostly meet each other, and self-trade
        prevention, not trading, would decide the stream.
        """
        user = self.rng.choice(self.users)
        side = self.rng.choice(("buy", "sell")) if count > 1 else None
        bodies = []
        for _ in range(count):
            bodies.append({**self.order_body(side), "client_order_id": f"{self.prefix}{self.steps}"})
            self.steps += 1
        self.figures.count(sent=count)
        self.figures.tally("requests", "batch" if count > 1 else "single")
        accepted = self.post(user.pk, bodies, replay=False)
        if accepted:
            self.recent = [*self.recent[-19:], (user.pk, accepted)]

    def replay(self) -> None:
        """Send an accepted request again: every order comes back 200, the same order, nothing placed."""
        user_id, bodies = self.recent[self.rng.randrange(len(self.recent))]
        self.figures.count(replays_sent=len(bodies))
        self.figures.tally("requests", "replay")
        self.post(user_id, bodies, replay=True)

    def post(self, user_id: int, bodies: list[dict], *, replay: bool) -> list[dict]:
        """Send the orders (batched when more than one); log what was accepted. Returns the accepted bodies."""
        if len(bodies) == 1:
            answered, lost = self.send(user_id, "POST", "/orders", bodies[0])
            try:
                data = answered.json()
            except ValueError:
                data = {"error": {"code": "not_json", "message": answered.text[:300]}}
            code = answered.status_code
            results = [{"status": code, "order": data} if code in (200, 201) else {"status": code, **data}]
        else:
            answered, lost = self.send(user_id, "POST", "/orders/batch", {"orders": bodies})
            if answered.status_code != 200:
                self.figures.failures.append(f"batch: {answered.status_code} {answered.content[:300]!r}")
                return []
            results = answered.json()["results"]
        accepted, new = [], []
        for body, result in zip(bodies, results, strict=True):
            status, cid = result["status"], body["client_order_id"]
            self.figures.tally("codes", status)
            if status not in (200, 201):
                if status >= 500 or status == 409 or replay:
                    self.figures.failures.append(f"{body}: {status} {result!r:.300}")
                else:
                    self.figures.tally("refusals", result["error"]["code"])
                continue
            order = result["order"]
            if order["client_order_id"] != cid:
                self.figures.failures.append(f"{body}: answered with another order {order}")
                continue
            if cid in self.placed:
                if status != 200 or order["id"] != self.placed[cid]:
                    self.figures.failures.append(f"{body}: placed again as {order['id']} ({status})")
                self.figures.count(replayed=1)
                continue
            if status == 200 and not lost:
                self.figures.failures.append(f"{body}: 200 for a client_order_id never used, with no answer lost")
            self.placed[cid] = order["id"]
            new.append(order["id"])
            self.trace[order["id"]] = f"{cid} {status} in {self.last_send}"
            if body["type"] == "limit" and body["time_in_force"] == "GTC":
                self.open.append((order["id"], user_id, cid))
            self.figures.count(accepted=1, replayed=int(status == 200))
            accepted.append(body)
        # Accepted in the order of their ids, not always the list's: after a lost answer the retry
        # answers 200 for what the lost attempt placed and 201 for what that attempt refused and
        # this one placed (a market order refused for want of a price, say), which came later.
        self.log += [("n", order_id) for order_id in sorted(new)]
        return accepted

    def cancel(self, *, by_client_id: bool) -> None:
        order_id, user_id, cid = self.open.pop(self.rng.randrange(len(self.open)))
        path = f"/orders/by-client-id/{cid}" if by_client_id else f"/orders/{order_id}"
        self.figures.tally("requests", "cancel_by_client_id" if by_client_id else "cancel")
        answered, lost = self.send(user_id, "DELETE", path)
        self.figures.tally("codes", answered.status_code)
        if answered.status_code == 202:
            self.cancel_recorded([order_id])
        elif answered.status_code != 400:
            self.figures.failures.append(f"cancel {order_id}: {answered.status_code} {answered.content[:300]!r}")
        elif lost and Order.objects.filter(pk=order_id, cancel_requested_at__isnull=False).exists():
            # The lost attempt was recorded and the order has ended since: "already canceled".
            self.cancel_recorded([order_id])

    def cancel_all(self) -> None:
        """DELETE /orders?symbol=: every live order of one user in this market."""
        user = self.rng.choice(self.users)
        self.figures.tally("requests", "cancel_all")
        answered, _ = self.send(user.pk, "DELETE", f"/orders?symbol={self.market.symbol}")
        self.figures.tally("codes", answered.status_code)
        if answered.status_code != 202:
            self.figures.failures.append(f"cancel all: {answered.status_code} {answered.content[:300]!r}")
        # Which orders it asked to cancel (this thread alone cancels in this market), in the order
        # they were queued: by id.
        asked = (
            Order.objects.filter(market=self.market, user=user, cancel_requested_at__isnull=False)
            .exclude(pk__in=self.canceled)
            .order_by("id")
            .values_list("id", flat=True)
        )
        self.cancel_recorded(list(asked))
        self.open = [entry for entry in self.open if entry[0] not in self.canceled]

    def cancel_recorded(self, order_ids: list[int]) -> None:
        for order_id in order_ids:
            if order_id not in self.canceled:
                self.canceled.add(order_id)
                self.log.append(("c", order_id))
                self.figures.count(cancels=1)

    def run(self) -> None:
        try:
            while self.steps < self.orders and time.monotonic() < self.deadline:
                kind = self.rng.choices(STEP_KINDS, weights=STEP_WEIGHTS)[0]
                if kind in ("cancel", "cancel_by_client_id") and self.open:
                    self.cancel(by_client_id=kind == "cancel_by_client_id")
                elif kind == "cancel_all":
                    self.cancel_all()
                elif kind == "replay" and self.recent:
                    self.replay()
                elif kind == "batch":
                    self.place(min(self.rng.randint(*BATCH_SIZES), self.orders - self.steps))
                else:
                    self.place(1)
                if len(self.open) > 400:  # orders long gone from the book: forget the oldest
                    del self.open[:100]
        except Exception as exc:  # noqa: BLE001 - reported with the run's figures
            self.figures.failures.append(f"{self.market.symbol} client stopped: {exc!r}")
        finally:
            for client in self.clients.values():
                client.close()
            connection.close()


class Chaos:
    """The faults, at points of the stream drawn from the seed: shard SIGKILL, web SIGKILL, Redis flush.

    Redis is flushed while the shard is down (the host of both died): the restarted shard first
    sweeps every pending order in its order of acceptance, then reads the queue. A flush under a
    running shard would let orders queued after the flush overtake the lost ones until its next
    sweep, which the comparison in acceptance order would report.
    """

    def __init__(self, *, seed: int, total: int, shard, web, redis_server, kills: int):
        rng = random.Random(f"{seed}:chaos")
        kinds = ["shard", "web"] + (["shard+redis"] if redis_server is not None else [])
        points = sorted(rng.sample(range(total // 20, total - total // 20), kills)) if kills else []
        self.plan = [(point, rng.choice(kinds), rng.randrange(100)) for point in points]
        self.shard, self.web, self.redis = shard, web, redis_server
        self.shard_down_until: int | None = None
        self.shard_down_since = 0.0

    def step(self, done: int, figures: Figures) -> None:
        # Back after its share of the stream (the restart itself takes seconds, while the clients
        # go on), or after a minute at most.
        if self.shard_down_until is not None and (
            done >= self.shard_down_until or time.monotonic() - self.shard_down_since > 60
        ):
            self.shard.start()
            self.shard_down_until = None
        while self.plan and done >= self.plan[0][0]:
            point, kind, pick = self.plan.pop(0)
            if kind.startswith("shard") and self.shard_down_until is not None:
                continue  # down already
            figures.count(kills=Counter({kind: 1}))
            if kind.startswith("shard"):
                self.shard.kill()
                if kind == "shard+redis":
                    self.redis.flush()
                # Down for a while: orders pile up pending and the restart replays them.
                self.shard_down_until = point + 20 + pick
                self.shard_down_since = time.monotonic()
            elif kind == "web":
                alive = self.web.alive()
                index = alive[pick % len(alive)]
                self.web.kill(index)
                self.web.spawn(index)

    def finish(self) -> None:
        if self.shard_down_until is not None or self.shard.process.poll() is not None:
            self.shard.start()
            self.shard_down_until = None


def markets_create(count: int) -> list[tuple[Market, tuple]]:
    out = []
    for spec in MARKET_SPECS[:count]:
        symbol, tick, lot, maker_fee, taker_fee, *_ = spec
        base, quote = symbol.split("-")
        market = Market.objects.create(
            symbol=symbol,
            base=asset_get_or_create(code=base),
            quote=asset_get_or_create(code=quote),
            tick_size=Decimal(tick),
            lot_size=Decimal(lot),
            min_notional=Decimal(1),
            maker_fee=Decimal(maker_fee),
            taker_fee=Decimal(taker_fee),
            shard=0,
        )
        out.append((market, spec))
    return out


def users_create(count: int, markets, seed: int) -> tuple[list, dict[int, str]]:
    from django.contrib.auth import get_user_model

    codes = sorted({code for market, _ in markets for code in market.symbol.split("-")})
    users, keys = [], {}
    for n in range(count):
        # No password: they trade with API tokens, and hashing one costs a second of a busy machine.
        user = get_user_model().objects.create(username=f"stream{seed}-{n}")
        for code in codes:
            funds_deposit(user=user, asset=asset_get_or_create(code=code), amount=DEPOSIT)
        keys[user.pk] = token_create(user=user)[1]
        users.append(user)
    return users, keys


def stream_run(
    *,
    url: str,
    shard,
    web,
    redis_server=None,
    seed: int,
    orders: int,
    markets: int,
    users: int,
    kills: int,
    seconds: float | None = None,
    progress=None,
) -> dict:
    """Run the stream, inject the faults, wait until settled, check everything. Returns the figures.

    ``seconds`` stops sending after that long (the check still runs); ``progress(line)`` is called
    about every 30 seconds with the figures so far.
    """
    started = time.monotonic()
    chosen = markets_create(markets)
    traders, keys = users_create(users, chosen, seed)
    figures = Figures()
    per_market = orders // markets
    runs = [
        MarketRun(market=m, spec=s, users=traders, keys=keys, url=url, seed=seed, orders=per_market, figures=figures)
        for m, s in chosen
    ]
    chaos = Chaos(seed=seed, total=per_market * markets, shard=shard, web=web, redis_server=redis_server, kills=kills)
    threads = [threading.Thread(target=run.run, name=f"stream-{run.market.symbol}") for run in runs]
    for run in runs:
        run.deadline = started + seconds if seconds else float("inf")
    for thread in threads:
        thread.start()
    reported = time.monotonic()
    while any(thread.is_alive() for thread in threads):
        chaos.step(sum(run.steps for run in runs), figures)
        threads[0].join(timeout=0.05)  # the faults are placed by order count; this only paces the loop
        if progress and time.monotonic() - reported > 30:
            reported = time.monotonic()
            elapsed = reported - started
            progress(
                f"{elapsed:7.0f}s sent {figures.sent} accepted {figures.accepted} cancels {figures.cancels} "
                f"kills {dict(figures.kills)} ({figures.sent / elapsed:.0f} orders/s)"
            )
    chaos.finish()
    shard.wait_idle(timeout=600)
    streamed = time.monotonic() - started
    problems = list(figures.failures)
    problems += stream_check(runs=runs, users=traders)
    trades = Trade.objects.count()
    return {
        "seed": seed,
        "orders_sent": figures.sent,
        "orders_accepted": figures.accepted,
        "answered_200_replay": figures.replayed,
        "orders_replayed_on_purpose": figures.replays_sent,
        "cancels_accepted": figures.cancels,
        "requests": dict(sorted(figures.requests.items())),
        "refused": dict(figures.refusals),
        "http_codes": dict(sorted(figures.codes.items())),
        "retried_requests": figures.retries,
        "trades": trades,
        "kills": dict(figures.kills),
        "markets": markets,
        "users": users,
        "seconds_streaming": round(streamed, 1),
        "seconds_total": round(time.monotonic() - started, 1),
        "orders_per_second": round(figures.sent / streamed, 1) if streamed else 0,
        "problems": problems,
    }


# --- the checks --------------------------------------------------------------------------------


def stream_check(*, runs: list[MarketRun], users) -> list[str]:
    problems = []
    problems += exactly_once([(kind, oid) for run in runs for kind, oid in run.log])
    for run in runs:
        problems += market_against_model(run)
    problems += fees_and_money(users)
    problems += [f"ledger: {p}" for p in ledger_problems()]
    problems += [f"holds: {p}" for p in hold_problems()]
    return problems


def exactly_once(log) -> list[str]:
    accepted = {oid for kind, oid in log if kind == "n"}
    problems = []
    if len(accepted) != sum(1 for kind, _ in log if kind == "n"):
        problems.append("an order id was answered for two different requests")
    stored = set(Order.objects.values_list("id", flat=True))
    if stored != accepted:
        problems.append(f"orders stored but never accepted: {sorted(stored - accepted)[:10]}")
        problems.append(f"orders accepted but not stored: {sorted(accepted - stored)[:10]}")
    if pending := Order.objects.filter(status="pending").count():
        problems.append(f"{pending} orders still pending after the shard went idle")
    holds = Transfer.objects.filter(kind=Transfer.Kind.HOLD, reference__startswith="order:").count()
    if holds != len(accepted):
        problems.append(f"{holds} order holds for {len(accepted)} orders")
    duplicated = (
        Transfer.objects.values("reference").annotate(n=Count("id")).filter(n__gt=1).values_list("reference", flat=True)
    )
    if duplicated := list(duplicated[:10]):
        problems.append(f"transfer references written twice: {duplicated}")
    return problems


def market_against_model(run: MarketRun) -> list[str]:
    """Replay the market's accepted orders and cancels through the reference model; compare."""
    market = run.market
    tick, lot = market.tick_size, market.lot_size
    unit = tick * lot
    rows = {row["id"]: row for row in Order.objects.filter(market=market).values()}
    model = RefBook()
    trades, last = [], {}
    for kind, order_id in run.log:
        if kind == "n":
            row = rows[order_id]
            limit = row["protection_price"] if row["type"] == "market" else row["price"]
            got_trades, updates = model.place(
                order_id=order_id,
                owner=row["user_id"],
                side=row["side"],
                price=int(limit / tick) if limit is not None else None,
                quantity=int(row["quantity"] / lot) if row["quantity"] is not None else None,
                quote_budget=int(row["quote_quantity"] / unit) if row["quote_quantity"] is not None else None,
                tif=row["time_in_force"],
                post_only=row["post_only"],
                stp=row["stp"],
                market=row["type"] == "market",
            )
        else:
            got_trades, updates = model.cancel(order_id=order_id)
        trades += got_trades
        for update in updates:
            if update.owner != -1:
                last[update.order_id] = update
    problems = []
    symbol = market.symbol
    stored = [
        (t[0], t[1], t[2], int(t[3] / tick), int(t[4] / lot))
        for t in Trade.objects.filter(market=market)
        .order_by("sequence")
        .values_list("maker_order_id", "taker_order_id", "taker_side", "price", "quantity")
    ]
    expected = [(t.maker_id, t.taker_id, t.taker_side, t.price, t.quantity) for t in trades]
    if stored != expected:
        at = next(
            (i for i, (a, b) in enumerate(zip(stored, expected, strict=False)) if a != b),
            min(len(stored), len(expected)),
        )
        problems.append(
            f"{symbol}: trades differ from the model at #{at} of {len(stored)} vs {len(expected)}: "
            f"{stored[at : at + 3]} vs {expected[at : at + 3]}"
        )
    placed = [oid for kind, oid in run.log if kind == "n"]
    sequences = [rows[oid]["sequence"] for oid in placed]
    if sequences != sorted(sequences) or None in sequences:
        problems.append(f"{symbol}: the engine saw orders out of their order of acceptance")
        at = next(
            (i for i, (a, b) in enumerate(zip(sequences, sequences[1:], strict=False)) if None in (a, b) or b < a),
            len(placed) - 1,
        )
        for oid in placed[max(0, at - 2) : at + 3]:
            row = rows[oid]
            problems.append(
                f"{symbol} accepted #{placed.index(oid)}: order {oid} sequence {row['sequence']} created "
                f"{row['created_at']} {row['status']}; {run.trace.get(oid)}"
            )
    for order_id, update in last.items():
        row = rows[order_id]
        status, filled, reason, hold = (
            row["status"],
            row["filled_quantity"],
            row["reject_reason"],
            row["hold_remaining"],
        )
        want = (update.status, Decimal(update.filled) * lot)
        if (status, filled) != want:
            problems.append(f"{symbol} order {order_id}: {status} filled {filled}, the model says {want}")
        elif update.reason and status not in ("open", "partially_filled") and reason != update.reason:
            problems.append(f"{symbol} order {order_id}: reason {reason!r}, the model says {update.reason!r}")
        if status in ("open", "partially_filled"):
            remaining = row["quantity"] - filled
            required = remaining * row["price"] if row["side"] == "buy" else remaining
            if hold != required:
                problems.append(f"{symbol} order {order_id}: holds {hold}, its remainder needs {required}")
        elif hold != 0:
            problems.append(f"{symbol} order {order_id}: {status} but still holds {hold}")
    book = sorted(
        (o["id"], o["user_id"], o["side"], int(o["price"] / tick), int((o["quantity"] - o["filled_quantity"]) / lot))
        for o in rows.values()
        if o["status"] in ("open", "partially_filled")
    )
    if book != sorted(model.resting_orders()):
        problems.append(f"{symbol}: the resting orders differ from the model's book")
    return problems


def fees_and_money(users) -> list[str]:
    """Every fee is the market's rate of its trade; fee accounts hold their sum; users hold what trades say."""
    problems = []
    fees: dict[str, Decimal] = defaultdict(Decimal)
    flows: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    markets = {m.pk: m for m in Market.objects.select_related("base", "quote")}
    for t in Trade.objects.all().iterator(chunk_size=5000):
        market = markets[t.market_id]
        base, quote = market.base, market.quote
        notional = t.price * t.quantity
        buyer, seller = (
            (t.taker_user_id, t.maker_user_id) if t.taker_side == "buy" else (t.maker_user_id, t.taker_user_id)
        )
        # The fee is paid in the asset received: base by the buyer, quote by the seller.
        maker_asset, taker_asset = (quote, base) if t.taker_side == "buy" else (base, quote)
        maker_gets, taker_gets = (notional, t.quantity) if t.taker_side == "buy" else (t.quantity, notional)
        expected = (
            fee_of(maker_gets, market.maker_fee, maker_asset),
            fee_of(taker_gets, market.taker_fee, taker_asset),
        )
        if (t.maker_fee, t.taker_fee) != expected:
            problems.append(f"trade {t.pk}: fees {(t.maker_fee, t.taker_fee)}, the rates say {expected}")
        fees[maker_asset.code] += t.maker_fee
        fees[taker_asset.code] += t.taker_fee
        buyer_fee, seller_fee = (t.taker_fee, t.maker_fee) if t.taker_side == "buy" else (t.maker_fee, t.taker_fee)
        flows[(buyer, base.code)] += t.quantity - buyer_fee
        flows[(buyer, quote.code)] -= notional
        flows[(seller, base.code)] -= t.quantity
        flows[(seller, quote.code)] += notional - seller_fee
    collected = dict(
        LedgerAccount.objects.filter(kind=LedgerAccount.Kind.FEES)
        .values_list("asset__code")
        .annotate(total=Sum("balance"))
    )
    for code in set(fees) | set(collected):
        if collected.get(code, Decimal(0)) != fees.get(code, Decimal(0)):
            problems.append(
                f"fees in {code}: the fee account holds {collected.get(code)}, trades charged {fees.get(code)}"
            )
    balances = balances_for_users(user_ids=[u.pk for u in users])
    for user_id, rows in balances.items():
        for row in rows:
            expected = DEPOSIT + flows[(user_id, row["asset"])]
            if row["available"] + row["locked"] != expected:
                problems.append(
                    f"user {user_id} {row['asset']}: holds {row['available'] + row['locked']}, deposit and trades say {expected}"
                )
    return problems
