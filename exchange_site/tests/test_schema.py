"""The OpenAPI schema: generated, valid OpenAPI 3, and it documents every endpoint of API.md that exists."""

import io
import re

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django.urls import get_resolver, resolve
from drf_spectacular.generators import SchemaGenerator
from rest_framework.views import APIView

from accounts.authentication import SignedRequestAuthentication
from accounts.permissions import ApiKeyScope
from exchange_site.api_urls import api_not_found

# Every HTTP endpoint of shared/API.md (base /api/v1), with sample values for its parameters.
API_MD = [
    ("GET", "/markets"),
    ("GET", "/markets/BTC-USD/depth"),
    ("GET", "/markets/BTC-USD/trades"),
    ("GET", "/markets/BTC-USD/candles"),
    ("GET", "/markets/BTC-USD/ticker"),
    ("GET", "/balances"),
    ("POST", "/orders"),
    ("GET", "/orders"),
    ("GET", "/orders/7"),
    ("DELETE", "/orders/7"),
    ("GET", "/fills"),
    ("POST", "/orders/batch"),
    ("DELETE", "/orders"),
    ("GET", "/orders/by-client-id/abc-1"),
    ("DELETE", "/orders/by-client-id/abc-1"),
    ("GET", "/orders/7/events"),
    ("GET", "/markets/BTC-USD/depth/stream"),
    ("GET", "/deposits"),
    ("POST", "/deposits"),
    ("GET", "/withdrawals"),
    ("POST", "/withdrawals"),
    ("GET", "/statement"),
]
# In the code already before this round: these must be found, so the check above is never vacuous.
CORE = API_MD[:11]


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def implemented(method: str, path: str) -> bool:
    match = resolve("/api/v1" + path)
    if match.func is api_not_found:
        return False
    view = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
    return view is None or hasattr(view, method.lower())


def documented(schema, method: str, path: str) -> bool:
    for template, operations in schema["paths"].items():
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, "/api/v1" + path) and method.lower() in operations:
            return True
    return False


def test_the_schema_is_valid_openapi_3_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert yaml.safe_load(out.getvalue())["openapi"].startswith("3.")


def test_every_endpoint_of_the_contract_that_exists_is_documented(schema):
    missing = [f"{m} {p}" for m, p in API_MD if implemented(m, p) and not documented(schema, m, p)]
    assert missing == []
    assert all(implemented(m, p) and documented(schema, m, p) for m, p in CORE)


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_bodies_errors_and_auth_are_documented(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["tokenAuth"]["name"] == "Authorization"
    assert {schemes[name]["name"] for name in ("apiKeyId", "apiKeyTimestamp", "apiKeySignature")} == {
        "X-API-Key",
        "X-API-Timestamp",
        "X-API-Signature",
    }
    assert "cookieAuth" in schemes
    error = schema["components"]["schemas"]["ErrorDetail"]
    assert set(error["properties"]) == {"code", "message", "fields"}
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert success and all("content" in responses[code] for code in success), (path, method)
        if "text/event-stream" in responses.get("200", {}).get("content", {}):
            continue  # a stream, not a DRF view: no body to refuse, no request rate to limit
        for code in ("400", "429"):
            assert responses[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
        if method in ("post", "put", "patch"):
            assert "requestBody" in operation and "413" in responses, (path, method)
        public = path.startswith("/api/v1/markets")
        if public:
            assert operation["security"] == [{}], path
        else:
            assert {} not in operation["security"] and "401" in responses, (path, method)
            assert {"apiKeyId": [], "apiKeyTimestamp": [], "apiKeySignature": []} in operation["security"]
    listed = dict(operations_by_key(schema))
    assert "X-Next-Cursor" in listed[("/api/v1/orders", "get")]["responses"]["200"]["headers"]
    assert "X-Next-Cursor" in listed[("/api/v1/fills", "get")]["responses"]["200"]["headers"]
    order = schema["components"]["schemas"]["Order"]
    assert order["properties"]["price"]["type"] == "string"


def operations_by_key(schema):
    for path, method, operation in operations(schema):
        yield (path, method), operation


@pytest.mark.django_db
def test_the_schema_is_served_as_yaml_and_json():
    client = Client()
    response = client.get("/api/v1/schema")
    # application/vnd.oai.openapi: the YAML form.
    assert response.status_code == 200 and response["Content-Type"].startswith("application/vnd.oai.openapi;")
    assert "/api/v1/orders" in yaml.safe_load(response.content)["paths"]
    response = client.get("/api/v1/schema?format=json")
    assert response.status_code == 200 and "json" in response["Content-Type"]
    assert "/api/v1/markets" in response.json()["paths"]


def api_views():
    def walk(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns)
            else:
                view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
                if isinstance(view, type) and issubclass(view, APIView):
                    yield view

    return set(walk(get_resolver().url_patterns))


def test_every_view_that_accepts_signed_requests_checks_the_key_scope():
    views = api_views()
    assert len(views) > 5
    for view in views:
        changes = any(hasattr(view, method) for method in ("post", "put", "patch", "delete"))
        if changes and SignedRequestAuthentication in view().authentication_classes:
            assert ApiKeyScope in view().permission_classes, view


@pytest.mark.django_db
def test_the_documented_order_and_fill_fields_are_the_rendered_ones(funded):
    from orders.models import Order, Trade
    from orders.schema import FillSerializer, OrderSerializer
    from orders.serializers import fills_of_trade, order_data
    from orders.tests.factories import MarketFactory

    market = MarketFactory(symbol="BTC-USD")
    trader = funded(USD="100")
    order = Order.objects.create(
        user=trader, market=market, side="buy", type="limit", price=1, quantity=1, status=Order.Status.FILLED
    )
    assert set(order_data(order)) == set(OrderSerializer().fields)
    trade = Trade(pk=1, market=market, price=1, quantity=1, taker_side="buy", maker_order_id=order.pk)
    trade.taker_order_id, trade.maker_user_id, trade.taker_user_id = order.pk, 0, trader.pk
    trade.maker_fee = trade.taker_fee = 0
    from django.utils import timezone

    trade.created_at = timezone.now()
    (fill,) = fills_of_trade(trade, user_id=trader.pk, symbol="BTC-USD", base_code="BTC", quote_code="USD")
    assert set(fill) == set(FillSerializer().fields)
