from django.urls import path

from .apis import FillListApi, OrderBatchApi, OrderByClientIdApi, OrderDetailApi, OrderEventListApi, OrderListCreateApi
from .db_threads import db_thread_view

urlpatterns = [
    path("orders", db_thread_view(OrderListCreateApi.as_view()), name="api-orders"),
    path("orders/batch", db_thread_view(OrderBatchApi.as_view()), name="api-orders-batch"),
    path(
        "orders/by-client-id/<str:client_order_id>",
        db_thread_view(OrderByClientIdApi.as_view()),
        name="api-order-by-client-id",
    ),
    path("orders/<int:order_id>", db_thread_view(OrderDetailApi.as_view()), name="api-order"),
    path("orders/<int:order_id>/events", db_thread_view(OrderEventListApi.as_view()), name="api-order-events"),
    path("fills", db_thread_view(FillListApi.as_view()), name="api-fills"),
]
