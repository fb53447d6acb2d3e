from django.db import connection
from django.http import JsonResponse

from . import redis as redis_


def healthz(request):
    """200 when the database and Redis both answer, 503 otherwise; says which."""
    state = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        state["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "down", and we say why
        state["database"] = f"down: {exc.__class__.__name__}"
    try:
        redis_.client().ping()
        state["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        state["redis"] = f"down: {exc.__class__.__name__}"
    healthy = all(value == "ok" for value in state.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", **state}, status=200 if healthy else 503)
