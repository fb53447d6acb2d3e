from django.urls import path

from . import views

urlpatterns = [
    path("", views.funding_page, name="funding"),
    path("withdrawals/<int:withdrawal_id>/cancel/", views.withdrawal_cancel_view, name="withdrawal-cancel"),
    path("statement/", views.statement_page, name="statement"),
]
