"""Periodic checks run by the default worker on beat's schedule (exchange_site/celery.py)."""

from __future__ import annotations

import json
import logging
import time

from celery import shared_task
from django.utils import timezone

from exchange_site import redis as redis_

log = logging.getLogger("ledger.check")

# {"ok": bool, "problems": int, "at": ISO 8601, "seconds": float}: read by /metrics and the admin.
LAST_KEY_PARTS = ("ledger_check", "last")


@shared_task(name="ledger.ledger_check")
def ledger_check() -> dict:
    """Run ledger_check on the live exchange, log the result and keep it in Redis."""
    from orders.selectors import exchange_problems

    started = time.monotonic()
    problems = exchange_problems()
    result = {
        "ok": not problems,
        "problems": len(problems),
        "at": timezone.now().isoformat(),
        "seconds": round(time.monotonic() - started, 3),
    }
    if problems:
        log.error("ledger_check: %d invariant(s) broken:\n%s", len(problems), "\n".join(problems[:50]))
    else:
        log.info("ledger_check: OK in %.3f s", result["seconds"])
    redis_.client().set(redis_.key(*LAST_KEY_PARTS), json.dumps(result))
    return result
