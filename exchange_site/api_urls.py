from django.urls import path

from ledger.apis import BalanceListApi

urlpatterns = [
    path("balances", BalanceListApi.as_view(), name="api-balances"),
]
