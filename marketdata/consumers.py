"""``/ws/stream``: public market data and the signed-in user's own orders, fills and balances.

Message shapes are documented in marketdata/README.md. Public channels need no sign-in; the
private ones ("orders", "fills", "balances") use the user of the connection itself (``?token=`` or
the session), never anything the client sends, so no one can listen to another user's events.

Order entry (``op: place`` / ``cancel``) goes through the same services as the REST API. Ops are
queued per connection and run in arrival order by one task per connection; place ops waiting
together are placed as one set-based batch, on the order door's database threads
(orders/db_threads.py). A socket opened with an API token joins the token's auth group and closes
when that token is revoked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.services import token_auth_group, token_for_key
from exchange_site.errors import NotFound, RuleViolation
from exchange_site.throttling import ws_message_refused
from monitoring.recorders import place_results_record, websocket_closed, websocket_opened
from orders.db_threads import db_thread_run
from orders.serializers import order_data
from orders.services import order_cancel, orders_place

from . import presence
from .groups import depth_group, trades_group, user_group
from .selectors import (
    INTERVALS,
    candle_json,
    candle_latest,
    candle_merge,
    depth_get,
    market_get,
    ticker_get,
    ticker_json,
)

PRIVATE = ("orders", "fills", "balances")
MAX_CHANNELS = 64
ENTRY_BATCH = 50  # place ops placed together at most
ENTRY_QUEUE_MAX = 1000  # ops waiting per connection; beyond, refused with "busy"
TOKEN_REVOKED = 4001  # close code of a socket whose API token was revoked
TICKER_EVERY = 1.0  # seconds: a ticker is recomputed at most this often per connection


def _user_id(scope) -> int | None:
    user = scope.get("token_user") or scope.get("user")
    if user is not None and user.is_authenticated:
        return user.pk
    return None


class StreamConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.user_id = _user_id(self.scope)
        self.subscribed: set[str] = set()
        self.joined: set[str] = set()
        self.markets: dict[str, object] = {}
        self.depth_sequence: dict[str, int] = {}
        # (symbol, interval) -> {"candle": dict | None, "after_id": int}
        self.candles: dict[tuple[str, str], dict] = {}
        self.ticker_last_sent: dict[str, float] = defaultdict(float)
        self.ticker_tasks: dict[str, asyncio.Task] = {}
        self.entry_queue: list[dict] = []
        self.entry_task: asyncio.Task | None = None
        self.token_id = self.scope.get("token_id")
        if self.token_id is not None:
            await self.channel_layer.group_add(token_auth_group(self.user_id), self.channel_name)
            # Revoked between the handshake's lookup and joining the group: its message was missed.
            if await database_sync_to_async(token_for_key)(key=self.scope["token_key"]) is None:
                await self.close(code=TOKEN_REVOKED)
                return
        await self.accept()
        self.counted = await sync_to_async(websocket_opened, thread_sensitive=False)()

    async def disconnect(self, code):
        if getattr(self, "token_id", None) is not None:
            await self.channel_layer.group_discard(token_auth_group(self.user_id), self.channel_name)
        if getattr(self, "counted", False):
            await sync_to_async(websocket_closed, thread_sensitive=False)()
        for task in getattr(self, "ticker_tasks", {}).values():
            task.cancel()
        for group in self.joined:
            await self._group_left(group)

    # Client -> server ------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if await ws_message_refused(self):
            return
        try:
            content = json.loads(text_data if text_data is not None else bytes_data)
        except (TypeError, ValueError):
            return await self._error("invalid", "Send JSON.")
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            return await self._error("invalid", "Send a JSON object.")
        op = content.get("op")
        if op == "ping":
            return await self.send_json({"type": "pong"})
        if op in ("place", "cancel"):
            return await self._entry(content)
        channels = content.get("channels")
        if op not in ("subscribe", "unsubscribe") or not isinstance(channels, list):
            return await self._error("invalid", 'Send {"op": "subscribe" | "unsubscribe", "channels": [...]}.')
        names = [name for name in channels if isinstance(name, str)][:MAX_CHANNELS]
        if op == "subscribe":
            for name in names:
                await self._subscribe(name)
            await self.send_json({"type": "subscribed", "channels": sorted(self.subscribed)})
        else:
            for name in names:
                self.subscribed.discard(name)
                if name.startswith("candles:"):
                    self.candles.pop(tuple(name.split(":")[1:3]), None)
            await self._sync_groups()
            await self.send_json({"type": "unsubscribed", "channels": sorted(self.subscribed)})

    async def _error(self, code: str, message: str, channel: str | None = None):
        await self.send_json({"type": "error", "code": code, "message": message, "channel": channel})

    # Order entry ------------------------------------------------------------------------------

    async def _entry(self, content: dict):
        request_id = content.get("id")
        if request_id is not None and (not isinstance(request_id, (str, int)) or len(str(request_id)) > 64):
            return await self._entry_error(None, RuleViolation("invalid", "id is a string of at most 64 characters."))
        if self.user_id is None:
            return await self._entry_error(
                request_id, RuleViolation("auth_required", "Sign in (or pass ?token=) to place or cancel orders.")
            )
        if len(self.entry_queue) >= ENTRY_QUEUE_MAX:
            return await self._entry_error(request_id, RuleViolation("busy", "Too many orders waiting; slow down."))
        self.entry_queue.append(content)
        if self.entry_task is None:
            self.entry_task = asyncio.ensure_future(self._entry_drain())

    async def _entry_drain(self):
        """Run queued ops in arrival order: consecutive place ops as one batch, a cancel alone."""
        try:
            while self.entry_queue:
                if self.entry_queue[0].get("op") == "cancel":
                    await self._entry_cancel(self.entry_queue.pop(0))
                    continue
                batch = []
                while self.entry_queue and self.entry_queue[0].get("op") == "place" and len(batch) < ENTRY_BATCH:
                    batch.append(self.entry_queue.pop(0))
                await self._entry_place(batch)
        finally:
            self.entry_task = None

    async def _entry_place(self, batch: list[dict]):
        user = self._entry_user()
        results = await db_thread_run(_place_rendered, user=user, requests=[content.get("order") for content in batch])
        for content, (status, body) in zip(batch, results, strict=True):
            if status >= 300:
                await self._entry_error(content.get("id"), body)
            else:
                await self.send_json({"type": "placed", "id": content.get("id"), "status": status, "order": body})

    async def _entry_cancel(self, content: dict):
        order_id = content.get("order_id")
        if not isinstance(order_id, int) or isinstance(order_id, bool) or order_id <= 0:
            error = RuleViolation("invalid", "order_id is an order's id.", fields={"order_id": ["An order id."]})
            return await self._entry_error(content.get("id"), error)
        try:
            order = await db_thread_run(_cancel_rendered, user=self._entry_user(), order_id=order_id)
        except RuleViolation as error:
            return await self._entry_error(content.get("id"), error)
        await self.send_json({"type": "cancel_requested", "id": content.get("id"), "order": order})

    def _entry_user(self):
        return self.scope.get("token_user") or self.scope["user"]

    async def _entry_error(self, request_id, error: RuleViolation):
        await self.send_json(
            {"type": "error", "id": request_id, "code": error.code, "message": error.message, "fields": error.fields}
        )

    async def auth_token_revoked(self, event):
        if event.get("token_id") == self.token_id:
            await self.close(code=TOKEN_REVOKED)

    async def _subscribe(self, name: str):
        if name in PRIVATE:
            if self.user_id is None:
                return await self._error("auth_required", f"Sign in (or pass ?token=) to subscribe to {name}.", name)
            self.subscribed.add(name)
            return await self._join(user_group(self.user_id))
        kind, _, rest = name.partition(":")
        symbol, _, interval = rest.partition(":")
        if kind not in ("depth", "trades", "ticker", "candles") or not symbol or (kind != "candles" and interval):
            return await self._error("unknown_channel", f"Unknown channel {name!r}.", name)
        if kind == "candles" and interval not in INTERVALS:
            return await self._error("invalid_interval", f"Interval is one of {', '.join(INTERVALS)}.", name)
        market = await self._market(symbol)
        if market is None:
            return await self._error("unknown_market", f"Unknown market {symbol!r}.", name)
        if len(self.subscribed) >= MAX_CHANNELS and name not in self.subscribed:
            return await self._error("too_many_channels", f"At most {MAX_CHANNELS} channels.", name)
        self.subscribed.add(name)
        if kind == "depth":
            # Join first, then read: every change after the snapshot is already on its way to us.
            await self._join(depth_group(symbol))
            await self._send_depth_snapshot(symbol)
        elif kind == "trades":
            await self._join(trades_group(symbol))
        elif kind == "ticker":
            await self._join(depth_group(symbol))
            await self._join(trades_group(symbol))
            await self._send_ticker(symbol)
        else:
            await self._join(trades_group(symbol))
            candle, after_id = await database_sync_to_async(candle_latest)(market=market, interval=interval)
            self.candles[(symbol, interval)] = {"candle": candle, "after_id": after_id}
            await self.send_json(
                {
                    "channel": name,
                    "type": "snapshot",
                    "symbol": symbol,
                    "interval": interval,
                    "data": [candle_json(candle)] if candle else [],
                }
            )

    async def _market(self, symbol: str):
        if symbol not in self.markets:
            try:
                self.markets[symbol] = await database_sync_to_async(market_get)(symbol=symbol)
            except NotFound:
                return None
            if self.markets[symbol].symbol != symbol:  # symbols are case-sensitive on the stream
                self.markets.pop(symbol)
                return None
        return self.markets[symbol]

    async def _join(self, group: str):
        if group not in self.joined:
            if self.user_id is not None and group == user_group(self.user_id):
                # Counted in first: from here on the shard worker renders this user's events.
                await sync_to_async(presence.stream_opened, thread_sensitive=False)(user_id=self.user_id)
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.add(group)

    async def _group_left(self, group: str):
        await self.channel_layer.group_discard(group, self.channel_name)
        if self.user_id is not None and group == user_group(self.user_id):
            await sync_to_async(presence.stream_closed, thread_sensitive=False)(user_id=self.user_id)

    async def _sync_groups(self):
        """Leave every group no remaining subscription needs."""
        needed = set()
        for name in self.subscribed:
            kind, _, rest = name.partition(":")
            symbol = rest.partition(":")[0]
            if name in PRIVATE:
                needed.add(user_group(self.user_id))
            if kind in ("depth", "ticker"):
                needed.add(depth_group(symbol))
            if kind in ("trades", "ticker", "candles"):
                needed.add(trades_group(symbol))
        for group in self.joined - needed:
            await self._group_left(group)
        self.joined &= needed
        for symbol in [s for s in self.depth_sequence if f"depth:{s}" not in self.subscribed]:
            del self.depth_sequence[symbol]

    async def _send_depth_snapshot(self, symbol: str):
        snapshot = await sync_to_async(depth_get, thread_sensitive=False)(symbol=symbol)
        self.depth_sequence[symbol] = snapshot["sequence"]
        await self.send_json({"channel": f"depth:{symbol}", "type": "snapshot", **snapshot})

    async def _send_ticker(self, symbol: str):
        self.ticker_last_sent[symbol] = time.monotonic()
        ticker = await database_sync_to_async(ticker_get)(market=self.markets[symbol])
        if f"ticker:{symbol}" in self.subscribed:
            await self.send_json({"channel": f"ticker:{symbol}", "type": "snapshot", "data": ticker_json(ticker)})

    def _ticker_changed(self, symbol: str):
        """Recompute the ticker soon, at most once per TICKER_EVERY, however many batches arrive."""
        if f"ticker:{symbol}" not in self.subscribed or symbol in self.ticker_tasks:
            return

        async def later():
            try:
                await asyncio.sleep(max(0.0, self.ticker_last_sent[symbol] + TICKER_EVERY - time.monotonic()))
            finally:
                self.ticker_tasks.pop(symbol, None)
            await self._send_ticker(symbol)

        self.ticker_tasks[symbol] = asyncio.ensure_future(later())

    # Channel layer -> client ------------------------------------------------------------------

    async def md_depth(self, event):
        symbol = event["symbol"]
        self._ticker_changed(symbol)
        if f"depth:{symbol}" not in self.subscribed or symbol not in self.depth_sequence:
            return
        message = {key: event[key] for key in ("symbol", "sequence", "bids", "asks")}
        last = self.depth_sequence[symbol]
        if event["kind"] == "snapshot":
            self.depth_sequence[symbol] = event["sequence"]
            return await self.send_json({"channel": f"depth:{symbol}", "type": "snapshot", **message})
        if event["sequence"] <= last:
            return  # already in the snapshot this client has
        if event["sequence"] != last + 1:
            # A message was lost (the layer drops them for a client that reads too slowly): start over.
            return await self._send_depth_snapshot(symbol)
        self.depth_sequence[symbol] = event["sequence"]
        await self.send_json({"channel": f"depth:{symbol}", "type": "update", **message})

    async def md_trades(self, event):
        symbol, trades = event["symbol"], event["trades"]
        self._ticker_changed(symbol)
        if f"trades:{symbol}" in self.subscribed:
            await self.send_json({"channel": f"trades:{symbol}", "type": "update", "symbol": symbol, "data": trades})
        for (candle_symbol, interval), state in self.candles.items():
            if candle_symbol != symbol:
                continue
            changed: dict = {}
            for trade in trades:
                if int(trade["id"]) <= state["after_id"]:
                    continue  # counted in the snapshot already
                state["after_id"] = int(trade["id"])
                state["candle"] = candle_merge(state["candle"], trade, interval)
                changed[state["candle"]["open_time"]] = state["candle"]
            if changed:
                data = [candle_json(candle) for candle in changed.values()]
                await self.send_json(
                    {
                        "channel": f"candles:{symbol}:{interval}",
                        "type": "update",
                        "symbol": symbol,
                        "interval": interval,
                        "data": data,
                    }
                )

    async def user_events(self, event):
        for name in PRIVATE:
            if name in self.subscribed and event.get(name):
                await self.send_json({"channel": name, "type": "update", "data": event[name]})


def _place_rendered(*, user, requests: list) -> list[tuple[int, object]]:
    """orders_place with each result as (status, order data or RuleViolation), rendered on the database thread."""
    results = orders_place(user=user, requests=requests)
    place_results_record(results)  # /metrics counts what every door answers
    return [
        (result.status, result.error if result.error is not None else order_data(result.order)) for result in results
    ]


def _cancel_rendered(*, user, order_id: int) -> dict:
    return order_data(order_cancel(user=user, order_id=order_id))
