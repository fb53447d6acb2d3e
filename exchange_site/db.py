from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from django.db import OperationalError, connection

_SAFE_TEXT = re.compile(r"[A-Za-z0-9 :_.@/+-]*")

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


class Raw(str):
    """A literal already written as SQL (e.g. one timestamp shared by every row of a batch)."""


def sql_text(value) -> str:
    """A string literal, quoted and escaped."""
    text = str(value)
    if _SAFE_TEXT.fullmatch(text):
        return "'" + text + "'"
    return "'" + text.replace("\\", "\\\\").replace("'", "''").replace("\0", "\\0") + "'"


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    return format(value, "f")


def datetime_literal(value: datetime) -> Raw:
    # Stored as naive UTC, as Django stores them on MariaDB with USE_TZ.
    return Raw("'" + value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "'")


_LITERALS = {
    int: str,
    bool: lambda value: "1" if value else "0",
    type(None): lambda value: "NULL",
    Decimal: _decimal,
    Raw: str,
    str: sql_text,
    datetime: lambda value: str(datetime_literal(value)),
}


def rows_render(rows: Sequence[Sequence], *, chunk: int = 5000) -> list[str]:
    """Rows as SQL VALUES lists, ``chunk`` rows each: done ahead, away from the thread that holds the transaction."""
    literals, text = _LITERALS, sql_text
    return [
        ",".join(
            "(" + ",".join([literals.get(type(value), text)(value) for value in row]) + ")"
            for row in rows[start : start + chunk]
        )
        for start in range(0, len(rows), chunk)
    ]


def values_chunks(rows: Sequence[str], *, chunk: int = 5000) -> list[str]:
    """Rows already rendered as ``(...)`` joined into VALUES lists of ``chunk`` rows each."""
    return [",".join(rows[start : start + chunk]) for start in range(0, len(rows), chunk)]


def insert_rows(
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence] | None = None,
    *,
    rendered: list[str] | None = None,
    returning: str | None = None,
) -> list:
    """INSERT many rows in few statements; with ``returning``, the generated values in row order."""
    out: list = []
    chunks = rendered if rendered is not None else rows_render(rows or [])
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    tail = f" RETURNING {returning}" if returning else ""
    with connection.cursor() as cursor:
        for values in chunks:
            cursor.execute(head + values + tail)
            if returning:
                out.extend(row[0] for row in cursor.fetchall())
    return out
