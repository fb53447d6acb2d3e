"""The one error type for broken business rules, and its mapping to the API's error format.

Services raise ``RuleViolation``; the API, the admin and management commands each turn it into
their own kind of message. DRF's own errors (validation, auth, parsing) get the same envelope:
``{"error": {"code": ..., "message": ..., "fields": {...}}}``.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.http import Http404


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
