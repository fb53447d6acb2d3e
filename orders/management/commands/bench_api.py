"""Black-box load on a running exchange: order entry over HTTP and websockets, public depth, and
submit -> fill latency, from this process (asyncio + aiohttp) against ``--base-url``.

It creates its own two markets and traders directly through the services (rows only), then speaks
only HTTP and websockets. Throughput orders cross (buys and sells around one price, traders on both
sides) so the shard matches and settles them too. At the end it waits until no order of its markets
is pending, runs the ledger check, prints readable lines and ONE JSON line last.

Threads: one. The event loop runs every client; database work (set-up, the final wait and check)
happens before and after it.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from decimal import Decimal

import aiohttp
from django.core.management.base import BaseCommand
from django.db import connection

from accounts.services import token_create, user_create
from ledger.services import asset_get_or_create, funds_deposit
from orders.models import Order
from orders.selectors import exchange_problems
from orders.services import market_create


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def ms(value: float | None) -> float | None:
    return round(value * 1000, 2) if value is not None else None


class Command(BaseCommand):
    help = "Load a running exchange through its API and websockets; one JSON line of figures last."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--traders", type=int, default=32, help="bench traders (per-user rate limits apply)")
        parser.add_argument("--concurrency", type=int, default=32, help="HTTP requests in flight")
        parser.add_argument("--single-orders", type=int, default=4000, help="orders placed one per POST")
        parser.add_argument("--batch-orders", type=int, default=20000, help="orders placed in batches")
        parser.add_argument("--batch-size", type=int, default=50)
        parser.add_argument("--batch-concurrency", type=int, default=8, help="batch requests in flight")
        parser.add_argument("--ws-orders", type=int, default=20000, help="orders placed over websockets")
        parser.add_argument("--ws-connections", type=int, default=8)
        parser.add_argument("--ws-window", type=int, default=100, help="place ops in flight per socket")
        parser.add_argument("--depth-requests", type=int, default=10000)
        parser.add_argument("--rate", type=float, default=200, help="orders/s of the steady and fill phases")
        parser.add_argument("--steady-seconds", type=float, default=10)
        parser.add_argument("--shard", type=int, default=0)
        parser.add_argument("--settle-timeout", type=float, default=300)
        parser.add_argument(
            "--skip", default="", help="phases to skip, comma separated: single,batch,ws,depth,steady,fill"
        )

    def handle(self, *args, **options):
        base = options["base_url"].rstrip("/")
        setup = self.setup(traders=options["traders"], shard=options["shard"])
        database = connection.settings_dict["NAME"]
        self.line(
            f"bench_api: database {database}, markets {setup['symbol']} and {setup['fill_symbol']}, "
            f"{len(setup['keys'])} traders, against {base} (which must serve the same database)"
        )
        figures = asyncio.run(Bench(base=base, setup=setup, options=options, out=self.line).run())
        started = time.monotonic()
        settled = self.wait_settled(setup["market_ids"], timeout=options["settle_timeout"])
        figures["settle_wait_s"] = round(time.monotonic() - started, 2)
        figures["settled"] = settled
        # One snapshot: the demo bots may be trading while the bench checks.
        problems = exchange_problems()
        figures["ledger_ok"] = not problems
        for problem in problems[:20]:
            self.line(f"LEDGER {problem}")
        self.line(
            f"settled: {'yes' if settled else 'NO'} after {figures['settle_wait_s']} s; "
            f"ledger check: {'OK' if not problems else f'{len(problems)} problem(s)'}"
        )
        self.stdout.write(json.dumps(figures, sort_keys=True))

    def line(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def setup(self, *, traders: int, shard: int) -> dict:
        tag = secrets.token_hex(3).upper()
        asset_get_or_create(code="USD")
        markets = [
            market_create(
                symbol=f"BN{tag}{suffix}-USD", tick_size="0.01", lot_size="0.001", min_notional="0", shard=shard
            )
            for suffix in ("A", "F")
        ]
        keys = []
        for number in range(traders):
            user = user_create(username=f"bench-{tag.lower()}-{number}")
            funds_deposit(user=user, asset=markets[0].quote, amount="1000000000", memo="bench_api")
            for market in markets:
                funds_deposit(user=user, asset=market.base, amount="10000000", memo="bench_api")
            keys.append(token_create(user=user, name="bench_api")[1])
        return {
            "symbol": markets[0].symbol,
            "fill_symbol": markets[1].symbol,
            "market_ids": [market.pk for market in markets],
            "keys": keys,
        }

    def wait_settled(self, market_ids: list[int], *, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = Order.objects.filter(market_id__in=market_ids, status=Order.Status.PENDING).exists() or (
                Order.objects.filter(
                    market_id__in=market_ids, status__in=Order.LIVE_STATUSES, cancel_requested_at__isnull=False
                ).exists()
            )
            if not busy:
                return True
            time.sleep(0.2)
        return False


def fill_stages(sent_at: dict, answered_at: dict, filled_at: dict) -> dict[str, tuple]:
    """p50 / p99 of each stage of submit -> fill: the HTTP answer, the shard's match (the trade's time,
    stamped by the shard when it matched), and the commit, publish and websocket delivery after it."""
    from orders.models import Trade

    matched = dict(
        Trade.objects.filter(taker_order_id__in=list(filled_at))
        .order_by("id")
        .values_list("taker_order_id", "created_at")
        .reverse()
    )
    stages: dict[str, list[float]] = {"submit -> answer": [], "answer -> matched": [], "matched -> fill on ws": []}
    for order_id, filled in filled_at.items():
        if order_id not in matched or order_id not in answered_at:
            continue
        at = matched[order_id].timestamp()
        stages["submit -> answer"].append(answered_at[order_id] - sent_at[order_id])
        stages["answer -> matched"].append(at - answered_at[order_id])
        stages["matched -> fill on ws"].append(filled - at)
    return {name: (ms(percentile(v, 0.5)), ms(percentile(v, 0.99))) for name, v in stages.items()}


class Bench:
    def __init__(self, *, base: str, setup: dict, options: dict, out):
        self.base = base
        self.api = base + "/api/v1"
        self.ws_url = base.replace("http", "ws", 1) + "/ws/stream"
        self.symbol = setup["symbol"]
        self.fill_symbol = setup["fill_symbol"]
        self.keys = setup["keys"]
        self.options = options
        self.out = out
        self.rng = random.Random(7)
        self.refused: dict[str, int] = {}

    def order(self, *, symbol: str | None = None) -> dict:
        """A limit order around 100: buys and sells overlap, so about half of them trade."""
        side = self.rng.choice(("buy", "sell"))
        ticks = self.rng.randint(-20, 20) + (-10 if side == "buy" else 10)
        return {
            "symbol": symbol or self.symbol,
            "side": side,
            "type": "limit",
            "price": str(Decimal(10000 + ticks) / 100),
            "quantity": str(Decimal(self.rng.randint(1, 50)) / 1000),
        }

    def headers(self, index: int) -> dict:
        return {"Authorization": f"Token {self.keys[index % len(self.keys)]}"}

    def refuse(self, status: int, body) -> None:
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        key = f"{status}:{code}"
        self.refused[key] = self.refused.get(key, 0) + 1

    async def run(self) -> dict:
        skip = set(filter(None, self.options["skip"].split(",")))
        connector = aiohttp.TCPConnector(limit=max(self.options["concurrency"], 64))
        figures: dict = {}
        async with aiohttp.ClientSession(connector=connector) as session:
            self.session = session
            if "single" not in skip:
                figures["single_orders_per_s"] = await self.single()
            if "batch" not in skip:
                figures["batch_orders_per_s"] = await self.batches()
            if "ws" not in skip:
                figures["ws_orders_per_s"] = await self.websockets()
            if "depth" not in skip:
                figures["depth_gets_per_s"] = await self.depth()
            if "steady" not in skip:
                figures.update(await self.steady())
            if "fill" not in skip:
                figures.update(await self.fills())
        figures["refused"] = self.refused
        return figures

    async def post(self, path: str, body, index: int) -> tuple[int, object]:
        async with self.session.post(self.api + path, json=body, headers=self.headers(index)) as response:
            return response.status, await response.json(content_type=None)

    async def single(self) -> float:
        total, concurrency = self.options["single_orders"], self.options["concurrency"]
        counter = iter(range(total))
        latencies: list[float] = []

        async def worker(number: int):
            for _ in counter:
                sent = time.perf_counter()
                status, body = await self.post("/orders", self.order(), number)
                latencies.append(time.perf_counter() - sent)
                if status != 201:
                    self.refuse(status, body)

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        rate = total / (time.perf_counter() - started)
        self.out(
            f"single POST /orders: {rate:,.0f} orders/s at {concurrency} in flight "
            f"(p50 {ms(percentile(latencies, 0.5))} ms, p99 {ms(percentile(latencies, 0.99))} ms)"
        )
        return round(rate, 1)

    async def batches(self) -> float:
        size = self.options["batch_size"]
        count = self.options["batch_orders"] // size
        counter = iter(range(count))

        async def worker(number: int):
            for _ in counter:
                status, body = await self.post("/orders/batch", {"orders": [self.order() for _ in range(size)]}, number)
                if status != 200:
                    self.refuse(status, body)
                    continue
                for result in body["results"]:
                    if result["status"] != 201:
                        self.refuse(result["status"], result)

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(self.options["batch_concurrency"])))
        rate = count * size / (time.perf_counter() - started)
        self.out(
            f"POST /orders/batch: {rate:,.0f} orders/s ({size} per batch, {self.options['batch_concurrency']} in flight)"
        )
        return round(rate, 1)

    async def websockets(self) -> float:
        connections, window = self.options["ws_connections"], self.options["ws_window"]
        per_socket = self.options["ws_orders"] // connections

        async def socket(number: int):
            url = f"{self.ws_url}?token={self.keys[number % len(self.keys)]}"
            async with self.session.ws_connect(url, max_msg_size=0) as ws:
                sent = answered = 0
                while answered < per_socket:
                    while sent < per_socket and sent - answered < window:
                        await ws.send_json({"op": "place", "id": sent, "order": self.order()})
                        sent += 1
                    message = json.loads((await ws.receive()).data)
                    if message.get("type") == "placed":
                        answered += 1
                    elif message.get("type") == "error" and "id" in message:
                        answered += 1
                        self.refuse(400, {"error": message})

        started = time.perf_counter()
        await asyncio.gather(*(socket(n) for n in range(connections)))
        rate = per_socket * connections / (time.perf_counter() - started)
        self.out(f"websocket place: {rate:,.0f} orders/s ({connections} sockets, {window} ops in flight each)")
        return round(rate, 1)

    async def depth(self) -> float:
        total = self.options["depth_requests"]
        counter = iter(range(total))
        url = f"{self.api}/markets/{self.symbol}/depth"

        async def worker():
            for _ in counter:
                async with self.session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        self.refuse(response.status, {})

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.options["concurrency"])))
        rate = total / (time.perf_counter() - started)
        self.out(f"GET depth: {rate:,.0f} requests/s at {self.options['concurrency']} in flight")
        return round(rate, 1)

    async def paced(self, *, seconds: float, send) -> None:
        """Call ``send(i)`` (a coroutine) at the configured rate for ``seconds``, without waiting on answers."""
        rate = self.options["rate"]
        tasks = []
        started = time.perf_counter()
        for index in range(int(rate * seconds)):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(send(index)))
        await asyncio.gather(*tasks)

    async def steady(self) -> dict:
        latencies: list[float] = []

        async def send(index: int):
            sent = time.perf_counter()
            status, body = await self.post("/orders", self.order(), index)
            latencies.append(time.perf_counter() - sent)
            if status != 201:
                self.refuse(status, body)

        await self.paced(seconds=self.options["steady_seconds"], send=send)
        p50, p99 = ms(percentile(latencies, 0.5)), ms(percentile(latencies, 0.99))
        self.out(f"steady POST /orders at {self.options['rate']:,.0f}/s: p50 {p50} ms, p99 {p99} ms")
        return {"steady_rate": self.options["rate"], "steady_p50_ms": p50, "steady_p99_ms": p99}

    async def fills(self) -> dict:
        """A taker buys against one big resting sell at the configured rate; submit -> its fill on the stream."""
        maker, taker = 0, 1
        seconds = self.options["steady_seconds"]
        size = Decimal("0.001")
        resting = {
            "symbol": self.fill_symbol,
            "side": "sell",
            "type": "limit",
            "price": "100",
            "quantity": str(size * int(self.options["rate"] * seconds + 10)),
        }
        status, body = await self.post("/orders", resting, maker)
        if status != 201:
            self.refuse(status, body)
            return {}
        sent_at: dict[int, float] = {}
        filled_at: dict[int, float] = {}
        answered_at: dict[int, float] = {}
        async with self.session.ws_connect(f"{self.ws_url}?token={self.keys[taker]}") as ws:
            await ws.send_json({"op": "subscribe", "channels": ["fills"]})

            async def listen():
                async for message in ws:
                    data = json.loads(message.data)
                    if data.get("channel") == "fills":
                        now = time.time()
                        for fill in data["data"]:
                            filled_at.setdefault(fill["order_id"], now)

            listener = asyncio.ensure_future(listen())
            await asyncio.sleep(0.5)  # the resting sell reaches the book first

            async def send(index: int):
                order = {
                    "symbol": self.fill_symbol,
                    "side": "buy",
                    "type": "limit",
                    "price": "100",
                    "quantity": "0.001",
                }
                sent = time.time()
                status, body = await self.post("/orders", order, taker)
                if status == 201:
                    sent_at[body["id"]] = sent
                    answered_at[body["id"]] = time.time()
                else:
                    self.refuse(status, body)

            await self.paced(seconds=seconds, send=send)
            deadline = time.perf_counter() + 10
            while set(sent_at) - set(filled_at) and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            listener.cancel()
        latencies = [filled_at[i] - sent for i, sent in sent_at.items() if i in filled_at]
        p50, p99 = ms(percentile(latencies, 0.5)), ms(percentile(latencies, 0.99))
        missing = len(sent_at) - len(latencies)
        self.out(
            f"submit -> fill on the fills channel at {self.options['rate']:,.0f}/s: p50 {p50} ms, p99 {p99} ms"
            + (f" ({missing} fills not seen)" if missing else "")
        )
        stages = await asyncio.to_thread(fill_stages, sent_at, answered_at, filled_at)
        self.out(
            "where it went (p50 / p99 ms): "
            + ", ".join(f"{name} {values[0]} / {values[1]}" for name, values in stages.items())
        )
        return {"fill_p50_ms": p50, "fill_p99_ms": p99, "fills_missing": missing}
