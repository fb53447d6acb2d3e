from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal


def decimal_str(value) -> str | None:
    """A Decimal as the API writes it: plain notation, no trailing zeros ("60000", "0.0015")."""
    if value is None:
        return None
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def time_str(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as DRF writes datetimes."""
    value = moment.astimezone(UTC).isoformat()
    return value[:-6] + "Z" if value.endswith("+00:00") else value


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
