from django.http import Http404
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from exchange_site.errors import NotFound

from .format import decimal_str
from .selectors import INTERVALS, market_get, markets_list, ticker_get, ticker_json


def home(request):
    markets = [{"market": market, "ticker": ticker_json(ticker_get(market=market))} for market in markets_list()]
    return render(request, "marketdata/home.html", {"markets": markets})


@ensure_csrf_cookie
def market_page(request, symbol: str):
    try:
        market = market_get(symbol=symbol)
    except NotFound:
        raise Http404("Unknown market") from None
    page_config = {
        "symbol": market.symbol,
        "base": market.base.code,
        "quote": market.quote.code,
        **{
            field: decimal_str(getattr(market, field))
            for field in ("tick_size", "lot_size", "min_notional", "maker_fee", "taker_fee")
        },
        "status": market.status,
        "signed_in": request.user.is_authenticated,
        "intervals": list(INTERVALS),
    }
    return render(
        request,
        "marketdata/market.html",
        {"market": market, "markets": markets_list(), "intervals": list(INTERVALS), "page_config": page_config},
    )
