"""The one parser of amounts that arrive as text (API, websocket, FIX, commands).

An amount is an ASCII decimal string: digits, optionally a point and more digits. No sign, no
exponent, no whitespace, no other script's digits, no JSON number: what a client sends is exactly
what is stored, or it is refused. ``Decimal(str(x).strip())`` accepted all of those.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.conf import settings

from exchange_site.errors import RuleViolation

# [0-9], not \d: \d matches every script's digits.
_AMOUNT = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?")  # a sign only to say "greater than zero"
MAX_ADJUSTED = settings.AMOUNT_MAX_DIGITS - settings.AMOUNT_DECIMAL_PLACES  # digits before the point


def amount_parse(text, *, field: str, code: str = "invalid") -> Decimal:
    """A strictly positive Decimal from an amount string; RuleViolation(code) naming ``field`` otherwise."""
    if type(text) is not str or not _AMOUNT.fullmatch(text):
        raise RuleViolation(
            code,
            f'{field} must be a decimal string such as "10.5".',
            fields={field: ['A decimal string ("10.5"), not a number or other text.']},
        )
    value = Decimal(text)
    if value <= 0:
        raise RuleViolation(code, f"{field} must be greater than zero.", fields={field: ["Must be greater than zero."]})
    if value.adjusted() >= MAX_ADJUSTED:
        raise RuleViolation(code, f"{field} is too large.", fields={field: ["Too large."]})
    if -value.as_tuple().exponent > settings.AMOUNT_DECIMAL_PLACES and value != value.quantize(
        Decimal(1).scaleb(-settings.AMOUNT_DECIMAL_PLACES)
    ):
        raise RuleViolation(code, f"{field} has too many decimal places.", fields={field: ["Too many digits."]})
    return value
