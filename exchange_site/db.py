from __future__ import annotations

import functools
import random
import time

from django.db import OperationalError

# MariaDB: 1213 deadlock (the transaction was rolled back), 1205 lock wait timeout.
RETRYABLE = {1213, 1205}


def retry_on_deadlock(func=None, *, attempts: int = 4):
    """Run a whole durable transaction again when MariaDB picked it as a deadlock victim.

    Only for functions whose every write is inside their own transaction, so a retry starts clean.
    """

    def wrap(inner):
        @functools.wraps(inner)
        def run(*args, **kwargs):
            for attempt in range(1, attempts + 1):
                try:
                    return inner(*args, **kwargs)
                except OperationalError as exc:
                    if attempt == attempts or not exc.args or exc.args[0] not in RETRYABLE:
                        raise
                    time.sleep(random.uniform(0.005, 0.05) * attempt)

        return run

    return wrap(func) if func is not None else wrap
