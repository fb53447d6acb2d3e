"""Public depth on the API's fast lane (exchange_site/fast_lane.py): ``GET /api/v1/markets/{symbol}/depth``.

The answer is ``marketdata.apis.DepthApi``'s: the same levels (``depth_get``), the same per-address
rate limit. A query other than a plain ``limit`` from 1 to 1000, an unknown market or the limit
reached return None, and Django's view answers it.

Threads: ``depth`` runs on the event loop, ``_depth`` on an order-door thread.
"""

from __future__ import annotations

import re

from exchange_site.fast_lane import LeanRequest, LeanResponse, json_response
from exchange_site.throttling import AnonRateThrottle, window_allows
from orders.db_threads import db_thread_run
from orders.services import market_lookup

from .selectors import depth_get

_LIMIT = re.compile(r"[1-9][0-9]{0,3}")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


async def depth(request: LeanRequest) -> LeanResponse | None:
    params = request.params
    if params:
        raw = params.get("limit", "")
        if len(params) != 1 or not _LIMIT.fullmatch(raw) or int(raw) > MAX_LIMIT:
            return None
    limit = int(params.get("limit", DEFAULT_LIMIT))
    ident = AnonRateThrottle().get_ident(request)
    return await db_thread_run(_depth, symbol=request.match["symbol"], limit=limit, ident=ident)


def _depth(*, symbol: str, limit: int, ident: str | None) -> LeanResponse | None:
    if not window_allows("anon", ident)[0]:
        return None  # Django answers 429
    market = market_lookup(symbol=symbol)
    if market is None:
        return None  # Django answers 404 unknown_market
    return json_response(200, depth_get(symbol=market.symbol, limit=limit))
