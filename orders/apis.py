from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Order
from .selectors import fills_for_user, order_events_for_user, order_for_user, orders_for_user
from .serializers import order_data
from .services import order_cancel, order_place


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


class OrderListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        symbol = serializers.CharField(max_length=32)
        side = serializers.ChoiceField(choices=Order.Side.values)
        type = serializers.ChoiceField(choices=Order.Type.values, default=Order.Type.LIMIT)
        quantity = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=60)
        price = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=60)
        quote_quantity = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=60)
        time_in_force = serializers.ChoiceField(choices=Order.TimeInForce.values, default=Order.TimeInForce.GTC)
        post_only = serializers.BooleanField(default=False)
        stp = serializers.ChoiceField(choices=Order.Stp.values, default=Order.Stp.CANCEL_NEWEST)
        client_order_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=36)

    class FilterSerializer(PageInputSerializer):
        status = serializers.ChoiceField(choices=["open", "closed", "all"], default="all")

    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        orders, next_cursor = orders_for_user(user=request.user, **query.validated_data)
        return paged([order_data(order) for order in orders], next_cursor)

    def post(self, request):
        if not isinstance(request.data, dict):
            raise serializers.ValidationError("The body must be a JSON object.")
        payload = self.InputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        order, created = order_place(user=request.user, **payload.validated_data)
        return Response(order_data(order), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OrderDetailApi(APIView):
    def get(self, request, order_id: int):
        order = order_for_user(user=request.user, order_id=order_id)
        fills, _ = fills_for_user(user=request.user, order_id=order.pk, limit=1000)
        return Response({**order_data(order), "fills": fills})

    def delete(self, request, order_id: int):
        order = order_cancel(user=request.user, order_id=order_id)
        return Response(order_data(order), status=status.HTTP_202_ACCEPTED)


class FillListApi(APIView):
    class FilterSerializer(PageInputSerializer):
        order_id = serializers.IntegerField(required=False, min_value=1)

    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        fills, next_cursor = fills_for_user(user=request.user, **query.validated_data)
        return paged(fills, next_cursor)


class OrderEventListApi(APIView):
    """The order's lifecycle journal, oldest first: every state change the order went through."""

    def get(self, request, order_id: int):
        return Response(order_events_for_user(user=request.user, order_id=order_id))
