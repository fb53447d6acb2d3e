import decimal

from .celery import app as celery_app

# Money arithmetic must never round silently: amounts have up to 36 digits (18 places), and a
# price times a quantity needs room for both. New threads copy DefaultContext.
decimal.DefaultContext.prec = 60
decimal.getcontext().prec = 60

__all__ = ("celery_app",)
