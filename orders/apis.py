"""The order API. Order requests are checked by the services (one set of rules for REST, batch,
websocket and FIX); the InputSerializers describe them for the schema, orders/schema.py the answers."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange_site.errors import RuleViolation, error_body
from exchange_site.schema import ErrorDetailSerializer

from .models import Order
from .schema import (
    CancelAllFilterSerializer,
    FillSerializer,
    OrderEventSerializer,
    OrdersCanceledSerializer,
    OrderSerializer,
    OrderWithFillsSerializer,
)
from .selectors import fills_for_user, order_events_for_user, order_for_client_id, order_for_user, orders_for_user
from .serializers import order_data
from .services import order_cancel, order_cancel_by_client_id, orders_cancel_all, orders_place

BATCH_MAX = 50


class PageInputSerializer(serializers.Serializer):
    cursor = serializers.IntegerField(required=False, min_value=1)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)
    symbol = serializers.CharField(required=False, max_length=32)


def paged(data, next_cursor) -> Response:
    response = Response(data)
    if next_cursor:
        # Bodies stay plain lists as the contract says; the next page's cursor rides in a header.
        response["X-Next-Cursor"] = str(next_cursor)
    return response


class AmountField(serializers.CharField):
    """An amount: an ASCII decimal string such as "10.5" (a JSON number is refused)."""

    def __init__(self, **kwargs):
        super().__init__(required=False, allow_null=True, max_length=60, trim_whitespace=False, **kwargs)


class OrderRequestSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=Order.Side.values)
    type = serializers.ChoiceField(choices=Order.Type.values, default=Order.Type.LIMIT)
    quantity = AmountField()
    price = AmountField()
    quote_quantity = AmountField()
    time_in_force = serializers.ChoiceField(choices=Order.TimeInForce.values, default=Order.TimeInForce.GTC)
    expire_at = serializers.DateTimeField(required=False, allow_null=True, help_text="GTD orders only; in the future.")
    post_only = serializers.BooleanField(default=False)
    stp = serializers.ChoiceField(choices=Order.Stp.values, default=Order.Stp.CANCEL_NEWEST)
    client_order_id = serializers.CharField(required=False, allow_null=True, max_length=36)


def _result_data(result) -> dict:
    if result.error is not None:
        error = result.error
        return {"status": result.status, **error_body(error.code, error.message, error.fields)}
    return {"status": result.status, "order": order_data(result.order)}


def batch_results_data(results) -> dict:
    """A batch's answer: one result per request, in order (also sent by orders/fast_lane.py)."""
    return {"results": [_result_data(result) for result in results]}


class OrderListCreateApi(APIView):
    InputSerializer = OrderRequestSerializer

    class FilterSerializer(PageInputSerializer):
        status = serializers.ChoiceField(choices=["open", "closed", "all"], default="all")

    @extend_schema(responses={200: OrderSerializer(many=True)})
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        orders, next_cursor = orders_for_user(user=request.user, **query.validated_data)
        return paged([order_data(order) for order in orders], next_cursor)

    @extend_schema(
        responses={201: OrderSerializer, 200: OpenApiResponse(OrderSerializer, "client_order_id seen before.")}
    )
    def post(self, request):
        # The service checks the request (strict amount strings, market rules): the same rules as a
        # batch or a websocket order, and a fraction of a serializer's cost.
        result = orders_place(user=request.user, requests=[request.data])[0]
        if result.error is not None:
            raise result.error
        return Response(order_data(result.order), status=result.status)

    @extend_schema(
        operation_id="orders_cancel_all",
        parameters=[CancelAllFilterSerializer],
        responses={202: OrdersCanceledSerializer},
    )
    def delete(self, request):
        query = CancelAllFilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        canceled = orders_cancel_all(user=request.user, symbol=query.validated_data.get("symbol"))
        return Response({"canceled": canceled}, status=status.HTTP_202_ACCEPTED)


class BatchResultSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="201 placed, 200 client_order_id replay, or the error's 4xx.")
    order = OrderSerializer(required=False)
    error = ErrorDetailSerializer(required=False)


class BatchResultsSerializer(serializers.Serializer):
    results = BatchResultSerializer(many=True, help_text="One per request, in the same order.")


class OrderBatchApi(APIView):
    class InputSerializer(serializers.Serializer):
        orders = OrderRequestSerializer(many=True, min_length=1, max_length=BATCH_MAX)

    @extend_schema(responses={200: BatchResultsSerializer})
    def post(self, request):
        orders = request.data.get("orders") if isinstance(request.data, dict) else None
        if not isinstance(orders, list) or not 1 <= len(orders) <= BATCH_MAX:
            raise RuleViolation(
                "invalid",
                f'Send {{"orders": [...]}} with 1 to {BATCH_MAX} order requests.',
                fields={"orders": [f"A list of 1 to {BATCH_MAX} orders."]},
            )
        results = orders_place(user=request.user, requests=orders)
        return Response(batch_results_data(results))


class OrderDetailApi(APIView):
    @extend_schema(responses=OrderWithFillsSerializer)
    def get(self, request, order_id: int):
        order = order_for_user(user=request.user, order_id=order_id)
        fills, _ = fills_for_user(user=request.user, order_id=order.pk, limit=1000)
        return Response({**order_data(order), "fills": fills})

    @extend_schema(responses={202: OrderSerializer})
    def delete(self, request, order_id: int):
        order = order_cancel(user=request.user, order_id=order_id)
        return Response(order_data(order), status=status.HTTP_202_ACCEPTED)


class OrderByClientIdApi(APIView):
    @extend_schema(responses=OrderWithFillsSerializer)
    def get(self, request, client_order_id: str):
        order = order_for_client_id(user=request.user, client_order_id=client_order_id)
        fills, _ = fills_for_user(user=request.user, order_id=order.pk, limit=1000)
        return Response({**order_data(order), "fills": fills})

    @extend_schema(responses={202: OrderSerializer})
    def delete(self, request, client_order_id: str):
        order = order_cancel_by_client_id(user=request.user, client_order_id=client_order_id)
        return Response(order_data(order), status=status.HTTP_202_ACCEPTED)


class FillListApi(APIView):
    class FilterSerializer(PageInputSerializer):
        order_id = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(responses=FillSerializer(many=True))
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        fills, next_cursor = fills_for_user(user=request.user, **query.validated_data)
        return paged(fills, next_cursor)


class OrderEventListApi(APIView):
    """The order's lifecycle journal, oldest first: every state change the order went through."""

    @extend_schema(responses=OrderEventSerializer(many=True))
    def get(self, request, order_id: int):
        return Response(order_events_for_user(user=request.user, order_id=order_id))
