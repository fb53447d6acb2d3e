import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange_site.settings")

app = Celery("exchange_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from django.conf import settings  # noqa: E402

app.conf.beat_schedule = {
    # ledger_check on the live exchange; its result is kept in Redis (ledger/tasks.py). A run that
    # could not start before the next one is due is dropped, not queued up behind it.
    "ledger-check": {
        "task": "ledger.ledger_check",
        "schedule": settings.LEDGER_CHECK_SECONDS,
        "options": {"expires": settings.LEDGER_CHECK_SECONDS},
    },
}

from matching.celery_step import install  # noqa: E402

install(app)
