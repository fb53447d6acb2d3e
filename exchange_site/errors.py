"""The one error type for broken business rules, and its mapping to the API's error format.

Services raise ``RuleViolation``; the API, the admin and management commands each turn it into
their own kind of message. DRF's own errors (validation, auth, parsing) get the same envelope:
``{"error": {"code": ..., "message": ..., "fields": {...}}}``.
"""

from __future__ import annotations

import logging

import redis
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse

log = logging.getLogger("exchange_site.errors")

# MariaDB client errors that mean "the server cannot be reached", not "this request is wrong":
# can't connect (2002, 2003), server gone away (2006), lost connection (2013, 2055), too many
# connections (1040), connection killed (1927), disconnected for inactivity (4031).
DB_UNREACHABLE = {1040, 1927, 2002, 2003, 2006, 2013, 2055, 4031}
RETRY_AFTER_SECONDS = 5


class RuleViolation(Exception):
    """A request that breaks a business rule. Nothing was changed."""

    status_code = 400

    def __init__(self, code: str, message: str, *, fields: dict | None = None, status_code: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}
        if status_code is not None:
            self.status_code = status_code


class NotFound(RuleViolation):
    status_code = 404

    def __init__(self, message: str = "Not found.", code: str = "not_found"):
        super().__init__(code, message)


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def service_down(exc: BaseException) -> str | None:
    """The backing service a failure shows to be unreachable ("database" or "redis"), or None."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return "redis"
    if isinstance(exc, InterfaceError):
        return "database"
    if isinstance(exc, OperationalError) and exc.args and exc.args[0] in DB_UNREACHABLE:
        return "database"
    return None


def unavailable_body(service: str) -> dict:
    return error_body(
        "service_unavailable",
        # Not "nothing was changed": a connection lost during a commit leaves its outcome unknown,
        # so a client retries an order with the same client_order_id.
        f"The exchange cannot reach its {service} right now. Try again shortly (an order with the same "
        "client_order_id is placed at most once).",
    )


class ServiceUnavailableMiddleware:
    """A view that fails because MariaDB or Redis is down answers 503, not 500.

    DRF views get the same answer from ``api_exception_handler``; this covers the other views.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        service = service_down(exc)
        if service is None:
            return None
        log.warning("%s %s: %s is down (%s: %s)", request.method, request.path, service, type(exc).__name__, exc)
        if request.path.startswith("/api/") or "text/html" not in request.headers.get("Accept", ""):
            response = JsonResponse(unavailable_body(service), status=503)
        else:
            # No template: rendering one may need the database that is down.
            response = HttpResponse("<h1>Service unavailable</h1><p>Please try again in a few seconds.</p>", status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def _flatten(detail) -> dict:
    if isinstance(detail, dict):
        return {
            key: [str(item) for item in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
    return {}


def api_exception_handler(exc, context):
    # DRF is imported here, not at the top: its settings import the authentication classes,
    # which import this module.
    from rest_framework import exceptions as drf_exceptions
    from rest_framework.response import Response
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, RuleViolation):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        return Response(error_body("not_found", "Not found."), status=404)
    if isinstance(exc, RequestDataTooBig):
        # Django's own body limit (DATA_UPLOAD_MAX_MEMORY_SIZE), met when request.body is read.
        from .parsers import body_too_large

        exc = body_too_large()
    service = service_down(exc)
    if service is not None:
        request = context.get("request")
        log.warning(
            "%s %s: %s is down (%s: %s)",
            request and request.method,
            request and request.path,
            service,
            type(exc).__name__,
            exc,
        )
        return Response(unavailable_body(service), status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if isinstance(exc.detail, list):
            message = "; ".join(str(item) for item in exc.detail)
        else:
            message = "Invalid input: " + "; ".join(f"{key}: {' '.join(value)}" for key, value in fields.items())
        response.data = error_body("invalid", message, fields)
    elif isinstance(exc, drf_exceptions.Throttled):
        # The Retry-After header is already set by DRF from the throttle's wait.
        response.data = error_body("rate_limited", f"Too many requests. Try again in {exc.wait or 1:.0f} s.")
    else:
        code = getattr(exc, "default_code", "error")
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(str(getattr(detail, "code", code) or code), str(detail))
    return response
