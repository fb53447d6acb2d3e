"""``GET /api/v1/markets/{symbol}/depth/stream``: depth as server-sent events.

An async view whose response iterates an async generator on daphne's event loop: no thread is held
per client. The generator listens on its own channel-layer channel in the market's depth group (the
same messages the websocket consumers get from the shard worker, see publish.py) and reads the
snapshot from Redis in a pool thread, never on the loop.

Events: ``snapshot`` (the whole book) then ``update`` (changed levels, quantity "0" removes one),
each with ``id:`` = the depth sequence, one higher per update. A client reconnecting with
``Last-Event-ID`` equal to the current sequence missed nothing and gets updates only; any other id
gets a fresh snapshot. A gap on the server's side (the layer drops messages for a reader that falls
too far behind) also sends a fresh snapshot. A comment line every ``KEEPALIVE_SECONDS`` keeps proxies
from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import json

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.http import JsonResponse, StreamingHttpResponse

from exchange_site.errors import NotFound, error_body

from .groups import depth_group
from .selectors import depth_get, market_get

KEEPALIVE_SECONDS = 15
RETRY_MS = 1000  # how soon a browser's EventSource reconnects


def sse_event(kind: str, message: dict) -> str:
    body = {key: message[key] for key in ("symbol", "sequence", "bids", "asks")}
    return f"event: {kind}\nid: {message['sequence']}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n"


async def _snapshot(symbol: str) -> dict:
    return await sync_to_async(depth_get, thread_sensitive=False)(symbol=symbol)


async def depth_events(*, symbol: str, last_event_id: int | None):
    """The stream's text, event by event, until the client goes away (the task is then cancelled)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = depth_group(symbol)
    # Join first, then read: every change after the snapshot is already on its way to this channel.
    await layer.group_add(group, channel)
    receiving = None
    try:
        yield f"retry: {RETRY_MS}\n\n"
        snapshot = await _snapshot(symbol)
        sequence = snapshot["sequence"]
        if last_event_id != sequence:
            yield sse_event("snapshot", snapshot)
        while True:
            receiving = receiving or asyncio.ensure_future(layer.receive(channel))
            done, _ = await asyncio.wait({receiving}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield ": keep-alive\n\n"
                continue
            message, receiving = receiving.result(), None
            if message.get("type") != "md.depth" or message.get("symbol") != symbol:
                continue
            if message["kind"] == "snapshot":
                sequence = message["sequence"]
                yield sse_event("snapshot", message)
            elif message["sequence"] <= sequence:
                continue  # already in the snapshot this client has
            elif message["sequence"] != sequence + 1:
                snapshot = await _snapshot(symbol)  # a message was lost: start over
                sequence = snapshot["sequence"]
                yield sse_event("snapshot", snapshot)
            else:
                sequence = message["sequence"]
                yield sse_event("update", message)
    finally:
        if receiving is not None:
            receiving.cancel()
        await layer.group_discard(group, channel)


def _last_event_id(request) -> int | None:
    raw = request.headers.get("Last-Event-ID", "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


async def depth_stream(request, symbol: str):
    if request.method != "GET":
        return JsonResponse(error_body("method_not_allowed", "Use GET."), status=405)
    try:
        market = await database_sync_to_async(market_get)(symbol=symbol)
    except NotFound as exc:
        return JsonResponse(error_body(exc.code, exc.message), status=404)
    response = StreamingHttpResponse(
        depth_events(symbol=market.symbol, last_event_id=_last_event_id(request)),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx and the like: pass each event on at once
    return response
