"""Helpers for tests that start real processes (daphne, shard workers) against the test database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)
PYTHON = sys.executable


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that must use this test run's database and Redis prefix."""
    db = connection.settings_dict
    url = f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_VERSION"}
    env.update(
        DATABASE_URL=url,
        REDIS_PREFIX=settings.REDIS_PREFIX,
        DJANGO_SETTINGS_MODULE="exchange_site.settings",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env
