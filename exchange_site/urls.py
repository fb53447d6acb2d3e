from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from funding.admin_site import ExchangeAdminSite
from marketdata.views import home
from monitoring.views import metrics

from .health import healthz

# The admin asks staff for a TOTP token (django-otp) and has the operator overview; swapping the
# class keeps every ModelAdmin already registered on admin.site.
admin.site.__class__ = ExchangeAdminSite

urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("funding/", include("funding.urls")),
    path("api/v1/", include("exchange_site.api_urls")),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("marketdata.urls")),
]
# daphne serves no static files itself; Django does while DEBUG (the default for `make run`).
urlpatterns += staticfiles_urlpatterns()
