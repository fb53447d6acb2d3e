import json
from datetime import datetime

import pytest
from django.db import connection

from exchange_site import redis as redis_
from exchange_site.celery import app
from ledger.models import LedgerAccount
from ledger.services import funds_deposit
from ledger.tasks import ledger_check

pytestmark = pytest.mark.django_db


def last_result() -> dict:
    return json.loads(redis_.client().get(redis_.key("ledger_check", "last")))


def test_beat_runs_ledger_check_every_few_minutes(settings):
    entry = app.conf.beat_schedule["ledger-check"]
    assert entry["task"] == ledger_check.name
    assert entry["schedule"] == settings.LEDGER_CHECK_SECONDS


def test_the_periodic_check_records_a_clean_result_in_redis(user, usd):
    funds_deposit(user=user, asset=usd, amount="10")
    ledger_check()
    result = last_result()
    assert set(result) == {"ok", "problems", "at", "seconds"}
    assert result["ok"] is True and result["problems"] == 0
    assert datetime.fromisoformat(result["at"]).tzinfo is not None
    assert isinstance(result["seconds"], float)


def test_the_periodic_check_records_and_logs_a_broken_ledger(user, usd, caplog):
    funds_deposit(user=user, asset=usd, amount="10")
    table = LedgerAccount._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET balance = balance + 1 WHERE `key` = %s", [f"user:{user.pk}:USD:available"])
    try:
        ledger_check()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET balance = balance - 1 WHERE `key` = %s", [f"user:{user.pk}:USD:available"]
            )
    result = last_result()
    assert result["ok"] is False and result["problems"] == 2  # the sum per asset, and the account vs its transfers
    assert "ledger_check: 2 invariant(s) broken" in caplog.text
