from django.urls import path

from .apis import FillListApi, OrderDetailApi, OrderEventListApi, OrderListCreateApi

urlpatterns = [
    path("orders", OrderListCreateApi.as_view(), name="api-orders"),
    path("orders/<int:order_id>", OrderDetailApi.as_view(), name="api-order"),
    path("orders/<int:order_id>/events", OrderEventListApi.as_view(), name="api-order-events"),
    path("fills", FillListApi.as_view(), name="api-fills"),
]
