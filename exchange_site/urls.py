from django.contrib import admin
from django.urls import include, path

from marketdata.views import home

from .health import healthz

urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/v1/", include("exchange_site.api_urls")),
]
