from django.urls import include, path

from ledger.apis import BalanceListApi

urlpatterns = [
    path("balances", BalanceListApi.as_view(), name="api-balances"),
    path("", include("orders.api_urls")),
    path("", include("marketdata.api_urls")),
]
