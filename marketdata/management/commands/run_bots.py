"""Demo bots that keep the markets alive, trading through the public HTTP API like any client.

A market maker (user ``maker-bot``) quotes a few levels on each side around a reference price that
random-walks; a taker (user ``taker-bot``) now and then sends a small market order. Both are made
by ``seed_demo`` with funds. Each run creates API tokens for them and revokes them on the way out.
Bounded: one action per market per ``--interval`` seconds, never more than ``--levels`` resting
orders per side, and ``--duration`` seconds at most (default: until stopped).
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import token_create, token_revoke

log = logging.getLogger("run_bots")

# Where the walk starts when a market has never traded.
DEFAULT_PRICES = {"BTC-USD": Decimal("60000"), "ETH-USD": Decimal("3000"), "ETH-BTC": Decimal("0.05")}


class Api:
    def __init__(self, base_url: str, token: str):
        self.base_url = base_url.rstrip("/") + "/api/v1"
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Token {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read() or b"null")
            except ValueError:
                payload = None
            return exc.code, payload


def _round_to(value: Decimal, step: Decimal, rounding=ROUND_HALF_UP) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


class Market:
    def __init__(self, spec: dict, reference: Decimal):
        self.symbol = spec["symbol"]
        self.tick = Decimal(spec["tick_size"])
        self.lot = Decimal(spec["lot_size"])
        self.min_notional = Decimal(spec["min_notional"])
        self.reference = reference

    def walk(self, rng: random.Random, volatility: Decimal) -> None:
        step = Decimal(str(rng.gauss(0, 1))) * volatility
        self.reference = max(self.tick * 100, self.reference * (1 + step))

    def price(self, offset: Decimal) -> Decimal:
        return max(self.tick, _round_to(self.reference * (1 + offset), self.tick))

    def quantity(self, rng: random.Random, price: Decimal, notional_range: tuple[Decimal, Decimal]) -> Decimal:
        """A random size worth between the two multiples of the minimum notional (at least one lot)."""
        low, high = notional_range
        target = self.min_notional * (low + (high - low) * Decimal(str(rng.random())))
        quantity = _round_to(max(target, self.min_notional * 2) / price, self.lot, ROUND_DOWN) + self.lot
        return quantity


class Command(BaseCommand):
    help = "Run demo market makers and takers against the HTTP API (--duration seconds, default until killed)."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--duration", type=float, default=None, help="seconds; default: run until killed")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
        parser.add_argument("--levels", type=int, default=5, help="resting orders per side per market")
        parser.add_argument("--spread", type=Decimal, default=Decimal("0.001"), help="distance between levels")
        parser.add_argument("--take-probability", type=float, default=0.5, help="chance of a taker order per round")
        parser.add_argument("--markets", nargs="*", help="symbols (default: every open market)")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--wait", type=float, default=60, help="seconds to wait for the web server")

    def handle(self, *args, **o):
        rng = random.Random(o["seed"])
        deadline = time.monotonic() + o["duration"] if o["duration"] else None
        users = {name: get_user_model().objects.filter(username=name).first() for name in ("maker-bot", "taker-bot")}
        missing = [name for name, user in users.items() if user is None]
        if missing:
            raise CommandError(f"No user {', '.join(missing)}: run `manage.py seed_demo` first.")
        tokens = {name: token_create(user=user, name="run_bots") for name, user in users.items()}
        maker = Api(o["base_url"], tokens["maker-bot"][1])
        taker = Api(o["base_url"], tokens["taker-bot"][1])
        try:
            self._wait_for_server(maker, o["wait"])
            markets = self._markets(maker, o["markets"])
            self.stdout.write(f"Bots trading {', '.join(m.symbol for m in markets)} on {o['base_url']}")
            while deadline is None or time.monotonic() < deadline:
                started = time.monotonic()
                for market in markets:
                    self._make(maker, market, rng, levels=o["levels"], spread=o["spread"])
                    if rng.random() < o["take_probability"]:
                        self._take(taker, market, rng)
                pause = o["interval"] - (time.monotonic() - started)
                if deadline is not None:
                    pause = min(pause, deadline - time.monotonic())
                time.sleep(max(pause, 0.05))
        except KeyboardInterrupt:
            pass
        finally:
            self._cancel_all(maker)
            for name, (token, _) in tokens.items():
                token_revoke(user=users[name], token_id=token.pk)
        self.stdout.write("Bots stopped.")

    def _wait_for_server(self, api: Api, seconds: float) -> None:
        until = time.monotonic() + seconds
        while True:
            try:
                status, _ = api.call("GET", "/markets")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > until:
                raise CommandError(f"{api.base_url} does not answer.")
            time.sleep(1)

    def _markets(self, api: Api, symbols: list[str] | None) -> list[Market]:
        _, specs = api.call("GET", "/markets")
        chosen = []
        for spec in specs or []:
            if spec["status"] != "open" or (symbols and spec["symbol"] not in symbols):
                continue
            _, ticker = api.call("GET", f"/markets/{spec['symbol']}/ticker")
            last = (ticker or {}).get("last")
            reference = (
                Decimal(last) if last else DEFAULT_PRICES.get(spec["symbol"], Decimal(spec["tick_size"]) * 10000)
            )
            chosen.append(Market(spec, reference))
        if not chosen:
            raise CommandError("No open market to trade.")
        return chosen

    def _make(self, api: Api, market: Market, rng: random.Random, *, levels: int, spread: Decimal) -> None:
        """Move the reference a little, cancel quotes now too far or on the wrong side, fill the gaps."""
        market.walk(rng, spread)
        status, resting = api.call("GET", f"/orders?symbol={market.symbol}&status=open&limit=200")
        if status != 200:
            log.warning("maker: listing orders failed: %s %s", status, resting)
            return
        wanted = {
            "buy": {market.price(-spread * (i + 1)) for i in range(levels)},
            "sell": {market.price(spread * (i + 1)) for i in range(levels)},
        }
        have = {"buy": set(), "sell": set()}
        for order in resting:
            if order["status"] == "pending" or order["price"] is None:
                continue
            price = Decimal(order["price"])
            stale = price not in wanted[order["side"]]
            # Keep some old quotes so the book has depth, but never more than `levels` a side.
            if stale and (len(have[order["side"]]) >= levels or rng.random() < 0.5):
                api.call("DELETE", f"/orders/{order['id']}")
            else:
                have[order["side"]].add(price)
        for side in ("buy", "sell"):
            for price in sorted(wanted[side] - have[side])[: max(0, levels - len(have[side]))]:
                quantity = market.quantity(rng, price, (Decimal(5), Decimal(40)))
                status, body = api.call(
                    "POST",
                    "/orders",
                    {
                        "symbol": market.symbol,
                        "side": side,
                        "type": "limit",
                        "price": str(price),
                        "quantity": str(quantity),
                        "post_only": True,
                    },
                )
                if status not in (200, 201):
                    log.info("maker: %s %s @ %s refused: %s", side, market.symbol, price, body)

    def _take(self, api: Api, market: Market, rng: random.Random) -> None:
        side = rng.choice(("buy", "sell"))
        quantity = market.quantity(rng, market.reference, (Decimal(2), Decimal(15)))
        status, body = api.call(
            "POST", "/orders", {"symbol": market.symbol, "side": side, "type": "market", "quantity": str(quantity)}
        )
        if status not in (200, 201):
            log.info("taker: %s %s %s refused: %s", side, quantity, market.symbol, body)

    def _cancel_all(self, api: Api) -> None:
        try:
            status, resting = api.call("GET", "/orders?status=open&limit=500")
            for order in resting if status == 200 else []:
                api.call("DELETE", f"/orders/{order['id']}")
        except OSError:
            pass
