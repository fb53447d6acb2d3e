"""``GET /metrics``: open by default, for Prometheus on the internal network (setting ``METRICS_PUBLIC``).

With ``METRICS_PUBLIC=false`` only staff users and requests from the loopback address get the figures.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse

# The classic text format: every Prometheus 2.x and 3.x server reads it.
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from exchange_site.errors import error_body

from .selectors import metrics_text

LOOPBACK = ("127.0.0.1", "::1")


def metrics(request):
    allowed = getattr(settings, "METRICS_PUBLIC", True) or request.META.get("REMOTE_ADDR") in LOOPBACK
    if not allowed and not (request.user.is_authenticated and request.user.is_staff):
        return JsonResponse(error_body("forbidden", "Metrics are for operators."), status=403)
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
