from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def amount(value) -> str:
    """A Decimal as plain digits without trailing zeros (``0.998``, ``1000``): never rounded, never ``1E+3``."""
    if value is None or value == "":
        return ""
    value = Decimal(value)
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
