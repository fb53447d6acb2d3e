from django.urls import path

from .apis import DepositDetailApi, DepositListCreateApi, WithdrawalDetailApi, WithdrawalListCreateApi

urlpatterns = [
    path("deposits", DepositListCreateApi.as_view(), name="api-deposits"),
    path("deposits/<int:deposit_id>", DepositDetailApi.as_view(), name="api-deposit"),
    path("withdrawals", WithdrawalListCreateApi.as_view(), name="api-withdrawals"),
    path("withdrawals/<int:withdrawal_id>", WithdrawalDetailApi.as_view(), name="api-withdrawal"),
]
