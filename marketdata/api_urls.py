from django.urls import path

from .apis import CandleListApi, DepthApi, MarketListApi, TickerApi, TradeListApi
from .sse import depth_stream

urlpatterns = [
    path("markets", MarketListApi.as_view(), name="api-markets"),
    path("markets/<str:symbol>/depth", DepthApi.as_view(), name="api-market-depth"),
    path("markets/<str:symbol>/depth/stream", depth_stream, name="api-market-depth-stream"),
    path("markets/<str:symbol>/trades", TradeListApi.as_view(), name="api-market-trades"),
    path("markets/<str:symbol>/candles", CandleListApi.as_view(), name="api-market-candles"),
    path("markets/<str:symbol>/ticker", TickerApi.as_view(), name="api-market-ticker"),
]
