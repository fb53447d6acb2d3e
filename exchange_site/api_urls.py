from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView

from ledger.apis import BalanceListApi, StatementApi

from .errors import error_body


@csrf_exempt  # else a POST or DELETE to a wrong path is a 403 HTML page (CSRF), not this 404
def api_not_found(request, *args, **kwargs):
    # Bots get the API's error format for a wrong path too, not Django's HTML page.
    return JsonResponse(error_body("not_found", f"No API endpoint at {request.path}."), status=404)


urlpatterns = [
    path("balances", BalanceListApi.as_view(), name="api-balances"),
    # The OpenAPI document: YAML, or JSON with ?format=json.
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("orders.api_urls")),
    path("", include("marketdata.api_urls")),
    path("statement", StatementApi.as_view(), name="api-statement"),
    path("", include("funding.api_urls")),
    re_path(r"^.*$", api_not_found),
]
