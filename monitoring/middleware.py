"""Counts what the HTTP door answers to order requests (accepted, replayed, refused by error code).

Works in both the sync and the async handler stack, so it never pushes an async view (the SSE
depth stream) onto a thread. Counting must never cost the client its answer: a Redis failure is
logged and the response goes out unchanged.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async

from .recorders import orders_outcomes_record

log = logging.getLogger("monitoring")

PLACE_PATH = "/api/v1/orders"
BATCH_PATH = "/api/v1/orders/batch"


def _error_code(body, status: int) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code)[:64] if code else f"http_{status}"


def _outcomes(path: str, response) -> tuple[int, int, Counter]:
    """(accepted, replayed, refused by code) of one answered request."""
    accepted, replayed, refused = 0, 0, Counter()
    status = response.status_code
    if path == PLACE_PATH and status in (200, 201):
        return (1, 0, refused) if status == 201 else (0, 1, refused)
    try:
        body = json.loads(response.content)
    except (ValueError, AttributeError):
        body = None
    if path == BATCH_PATH and status == 200 and isinstance(body, dict):
        for result in body.get("results") or ():
            code = result.get("status") if isinstance(result, dict) else None
            if code == 201:
                accepted += 1
            elif code == 200:
                replayed += 1
            else:
                refused[_error_code(result, code or 0)] += 1
        return accepted, replayed, refused
    refused[_error_code(body, status)] += 1
    return accepted, replayed, refused


def _record(path: str, response) -> None:
    try:
        accepted, replayed, refused = _outcomes(path, response)
        orders_outcomes_record(accepted=accepted, replayed=replayed, refused=dict(refused))
    except Exception:  # noqa: BLE001 - a lost count must not cost the client its answer
        log.exception("cannot count an order request's outcome")


def _counted(request) -> bool:
    return request.method == "POST" and request.path in (PLACE_PATH, BATCH_PATH)


class OrderOutcomeMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        response = self.get_response(request)
        if _counted(request):
            _record(request.path, response)
        return response

    async def __acall__(self, request):
        response = await self.get_response(request)
        if _counted(request):
            await sync_to_async(_record, thread_sensitive=False)(request.path, response)
        return response
