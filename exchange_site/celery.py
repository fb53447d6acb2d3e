import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange_site.settings")

app = Celery("exchange_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from matching.celery_step import install  # noqa: E402

install(app)
