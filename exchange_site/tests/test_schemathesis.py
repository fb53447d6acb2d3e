"""Schemathesis against the generated schema and a real daphne: every operation, valid and invalid
inputs, a funded user's token and an existing market. No answer is a 5xx, every answer conforms to
the schema (status code, content type, headers, body)."""

import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import token_create
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 12}


def existing(case, trader):
    """Half the cases name the real market, a real order and a valid limit order, to get past the 404s and 400s."""
    from orders.models import Order

    path = case.path_parameters or {}
    if "symbol" in path:
        path["symbol"] = "BTC-USD"
    if "order_id" in path:
        path["order_id"] = Order.objects.filter(user=trader).values_list("id", flat=True).last() or 1
    if case.method == "POST" and case.path == "/api/v1/orders" and isinstance(case.body, dict):
        case.body.update(symbol="BTC-USD", type="limit", price="100.00", quantity="0.010", quote_quantity=None)
        if case.body.get("time_in_force") == "GTD":
            case.body["time_in_force"] = "GTC"


def exercise(operation, mode, examples, call):
    @settings(
        max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode), real_market=st.booleans())
    def run(case, real_market):
        response = call(case, real_market)
        if mode is GenerationMode.POSITIVE or response.status_code >= 500:
            case.validate_response(response, checks=CHECKS, headers=response.request.headers)
        else:
            # Invalid input may be refused with any documented 4xx; it must still be well-formed.
            case.validate_response(response, checks=CHECKS[:1] + CHECKS[2:], headers=response.request.headers)

    run()


def test_every_operation_against_a_live_server(live_server_url, funded, capsys):
    MarketFactory(symbol="BTC-USD")
    trader = funded(USD="100000", BTC="100")
    headers = {"Authorization": f"Token {token_create(user=trader)[1]}"}
    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    session = requests.Session()
    counted = {"operations": 0, "examples": 0, "statuses": {}}

    def call(case, real_market):
        if real_market:
            existing(case, trader)
        response = case.call(base_url=live_server_url, session=session, headers=headers)
        counted["examples"] += 1
        counted["statuses"][response.status_code] = counted["statuses"].get(response.status_code, 0) + 1
        return response

    for result in schema.get_all_operations():
        operation = result.ok()
        if "text/event-stream" in str(operation.definition.raw.get("responses", {})):
            continue  # an endless event stream, not a JSON answer: marketdata/tests/test_sse.py covers it
        counted["operations"] += 1
        for mode, examples in EXAMPLES.items():
            try:
                exercise(operation, mode, examples, call)
            except Unsatisfiable:
                # Nothing of this operation can be made invalid (e.g. no parameters and no body).
                assert mode is GenerationMode.NEGATIVE, operation.label

    assert counted["statuses"].get(201), "no order was ever placed: the cases never got past validation"
    with capsys.disabled():
        print(
            f"\nschemathesis: {counted['operations']} operations, {counted['examples']} requests, {counted['statuses']}"
        )
    assert counted["operations"] >= 11
