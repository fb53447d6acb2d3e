"""Order entry on the API's fast lane (exchange_site/fast_lane.py): ``POST /api/v1/orders`` and
``POST /api/v1/orders/batch`` from a bot with an API token.

The answers are those of ``orders.apis``: the same service (``orders_place_many``, through the
process's placement groups), the same body for an order, a refused order and a batch, the same
outcome counts for ``/metrics``. Whatever the plain case does not cover returns None, and Django's
view answers it.

Threads: these coroutines run on the event loop; the placement runs on an order-door thread
(orders/placement_groups.py).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError

from exchange_site.errors import error_body
from exchange_site.fast_lane import LeanRequest, LeanResponse, json_response
from exchange_site.parsers import json_body_parse

from .apis import BATCH_MAX, batch_results_data
from .placement_groups import placement_groups
from .serializers import order_data


def _body(request: LeanRequest):
    if request.token() is None or not request.json_content() or request.params:
        return None
    try:
        return json_body_parse(request.body, settings.DEFAULT_CHARSET)
    except (ParseError, UnicodeError):
        return None  # Django answers 400 with the parser's message


async def place(request: LeanRequest) -> LeanResponse | None:
    data = _body(request)
    if not isinstance(data, dict):
        return None
    results = await placement_groups().place(key=request.token(), requests=[data])
    if results is None:
        return None  # Django answers 401 or 429
    result = results[0]
    if result.error is not None:
        error = result.error
        return json_response(error.status_code, error_body(error.code, error.message, error.fields))
    return json_response(result.status, order_data(result.order))


async def place_batch(request: LeanRequest) -> LeanResponse | None:
    data = _body(request)
    orders = data.get("orders") if isinstance(data, dict) else None
    if not isinstance(orders, list) or not 1 <= len(orders) <= BATCH_MAX:
        return None
    results = await placement_groups().place(key=request.token(), requests=orders)
    if results is None:
        return None  # Django answers 401 or 429
    return json_response(200, batch_results_data(results))
