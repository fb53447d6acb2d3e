from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

from marketdata.views import home
from monitoring.views import metrics

from .health import healthz

urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/v1/", include("exchange_site.api_urls")),
    path("", include("marketdata.urls")),
]
# daphne serves no static files itself; Django does while DEBUG (the default for `make run`).
urlpatterns += staticfiles_urlpatterns()
