"""Public market data: no authentication, the API's error format for bad input."""

from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import INTERVALS, candles_list, depth_get, market_get, markets_list, ticker_get, trades_list


def _amount(**kwargs):
    return serializers.DecimalField(max_digits=36, decimal_places=18, normalize_output=True, **kwargs)


class PublicApi(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)


class MarketListApi(PublicApi):
    class OutputSerializer(serializers.Serializer):
        symbol = serializers.CharField()
        base = serializers.CharField(source="base.code")
        quote = serializers.CharField(source="quote.code")
        tick_size = _amount()
        lot_size = _amount()
        min_notional = _amount()
        maker_fee = _amount()
        taker_fee = _amount()
        status = serializers.CharField()

    def get(self, request):
        return Response(self.OutputSerializer(markets_list(), many=True).data)


class DepthApi(PublicApi):
    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)

    class OutputSerializer(serializers.Serializer):
        """Documents the dict depth_get returns (it is sent as is: levels are [price, quantity] strings)."""

        symbol = serializers.CharField()
        sequence = serializers.IntegerField()
        bids = serializers.ListField(child=serializers.ListField(child=_amount(), min_length=2, max_length=2))
        asks = serializers.ListField(child=serializers.ListField(child=_amount(), min_length=2, max_length=2))

    def get(self, request, symbol: str):
        market = market_get(symbol=symbol)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(depth_get(symbol=market.symbol, limit=params.validated_data["limit"]))


class TradeListApi(PublicApi):
    class InputSerializer(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)
        cursor = serializers.IntegerField(min_value=1, required=False, help_text="Trades with a lower id.")

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        price = _amount()
        quantity = _amount()
        taker_side = serializers.CharField()
        created_at = serializers.DateTimeField()

    def get(self, request, symbol: str):
        market = market_get(symbol=symbol)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit = params.validated_data["limit"]
        trades = trades_list(market=market, limit=limit, before_id=params.validated_data.get("cursor"))
        response = Response(self.OutputSerializer(trades, many=True).data)
        if len(trades) == limit:
            # As the other lists: the body stays a plain list, the next page's cursor rides in a header.
            response["X-Next-Cursor"] = str(trades[-1]["id"])
        return response


class CandleListApi(PublicApi):
    class InputSerializer(serializers.Serializer):
        interval = serializers.ChoiceField(choices=list(INTERVALS), default="1m")
        limit = serializers.IntegerField(min_value=1, max_value=1000, default=300)

    class OutputSerializer(serializers.Serializer):
        open_time = serializers.DateTimeField()
        open = _amount()
        high = _amount()
        low = _amount()
        close = _amount()
        volume = _amount()

    def get(self, request, symbol: str):
        market = market_get(symbol=symbol)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        candles = candles_list(market=market, **params.validated_data)
        return Response(self.OutputSerializer(candles, many=True).data)


class TickerApi(PublicApi):
    class OutputSerializer(serializers.Serializer):
        symbol = serializers.CharField()
        last = _amount(allow_null=True)
        bid = _amount(allow_null=True)
        ask = _amount(allow_null=True)
        open_24h = _amount(allow_null=True)
        high_24h = _amount(allow_null=True)
        low_24h = _amount(allow_null=True)
        volume_24h = _amount()
        change_24h = _amount(allow_null=True)
        change_pct_24h = _amount(allow_null=True)

    def get(self, request, symbol: str):
        return Response(self.OutputSerializer(ticker_get(market=market_get(symbol=symbol))).data)
