"""The shapes of the order and fill objects (orders/serializers.py renders them as plain dicts,
for speed), as serializers, so the OpenAPI schema documents them. A test checks that the rendered
dicts have exactly these fields."""

from rest_framework import serializers

from .models import Order, OrderEvent

DECIMAL = r"^-?\d+(\.\d+)?$"


def amount(**kwargs):
    kwargs.setdefault("help_text", "A decimal as a string.")
    return serializers.RegexField(DECIMAL, **kwargs)


class FillSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    trade_id = serializers.IntegerField()
    order_id = serializers.IntegerField()
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=Order.Side.values)
    price = amount()
    quantity = amount()
    fee = amount()
    fee_asset = serializers.CharField()
    liquidity = serializers.ChoiceField(choices=["maker", "taker"])
    created_at = serializers.DateTimeField()


class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    client_order_id = serializers.CharField(allow_null=True)
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=Order.Side.values)
    type = serializers.ChoiceField(choices=Order.Type.values)
    price = amount(allow_null=True)
    quantity = amount(allow_null=True)
    quote_quantity = amount(allow_null=True)
    time_in_force = serializers.ChoiceField(choices=Order.TimeInForce.values)
    expire_at = serializers.DateTimeField(allow_null=True, help_text="GTD orders only.")
    post_only = serializers.BooleanField()
    stp = serializers.ChoiceField(choices=Order.Stp.values)
    status = serializers.ChoiceField(choices=Order.Status.values)
    filled_quantity = amount()
    remaining_quantity = amount()
    average_price = amount(allow_null=True)
    reject_reason = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class OrderWithFillsSerializer(OrderSerializer):
    fills = FillSerializer(many=True)


class OrderEventSerializer(serializers.Serializer):
    sequence = serializers.IntegerField(help_text="1, 2, ... in the order's own history.")
    type = serializers.ChoiceField(choices=OrderEvent.Type.values)
    at = serializers.DateTimeField()
    filled_quantity = amount()
    remaining_quantity = amount(allow_null=True)
    price = amount(allow_null=True, help_text="A fill's price on fill events; the order's own on accepted.")
    quantity = amount(allow_null=True, help_text="A fill's quantity on fill events; the order's own on accepted.")
    reason = serializers.CharField(allow_null=True)


class OrdersCanceledSerializer(serializers.Serializer):
    canceled = serializers.IntegerField(help_text="Open orders newly asked to cancel.")


class CancelAllFilterSerializer(serializers.Serializer):
    symbol = serializers.CharField(required=False, max_length=32, help_text="One market; all markets without it.")
