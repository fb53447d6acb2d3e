from django.urls import path

from . import views

urlpatterns = [
    path("markets/<str:symbol>/", views.market_page, name="market"),
]
