from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.services import user_create
from ledger.services import asset_get_or_create, funds_deposit
from orders.models import Market
from orders.services import market_create

MARKETS = [
    {"symbol": "BTC-USD", "tick_size": "0.01", "lot_size": "0.0001", "min_notional": "1", "shard": 0},
    {"symbol": "ETH-USD", "tick_size": "0.01", "lot_size": "0.001", "min_notional": "1", "shard": 0},
    {"symbol": "ETH-BTC", "tick_size": "0.00001", "lot_size": "0.001", "min_notional": "0.0001", "shard": 0},
]
TRADERS = {
    "alice": {"USD": "100000", "BTC": "5", "ETH": "50"},
    "bob": {"USD": "100000", "BTC": "5", "ETH": "50"},
    "maker-bot": {"USD": "1000000", "BTC": "50", "ETH": "500"},
    "taker-bot": {"USD": "1000000", "BTC": "50", "ETH": "500"},
}
OPERATOR = ("operator", "operator-demo-pass")
TRADER_PASSWORD = "demo-pass-123"


class Command(BaseCommand):
    help = "Demo assets, markets, an operator and traders with balances. Safe to run again."

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            for code in ("USD", "BTC", "ETH"):
                asset_get_or_create(code=code)
            for spec in MARKETS:
                if not Market.objects.filter(symbol=spec["symbol"]).exists():
                    market_create(**spec)
            if not User.objects.filter(username=OPERATOR[0]).exists():
                user_create(username=OPERATOR[0], password=OPERATOR[1], is_staff=True)
            for username, funds in TRADERS.items():
                if User.objects.filter(username=username).exists():
                    continue
                user = user_create(username=username, password=TRADER_PASSWORD)
                for code, amount in funds.items():
                    funds_deposit(
                        user=user,
                        asset=asset_get_or_create(code=code),
                        amount=Decimal(amount),
                        reference=f"seed:{username}:{code}",
                        memo="seed_demo",
                    )
        self.stdout.write(f"Operator: {OPERATOR[0]} / {OPERATOR[1]} (http://127.0.0.1:8000/admin/)")
        self._operator_totp(User.objects.get(username=OPERATOR[0]))
        self.stdout.write(f"Traders: {', '.join(TRADERS)} / password {TRADER_PASSWORD}")

    def _operator_totp(self, operator) -> None:
        # The admin asks staff for a TOTP token: the demo operator gets a device to sign in with.
        from django_otp.plugins.otp_totp.models import TOTPDevice

        device = TOTPDevice.objects.filter(user=operator, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=operator, name="demo", confirmed=True)
        self.stdout.write(
            f"Operator 2FA: add {device.config_url} to an authenticator app, "
            f"or run `manage.py totptoken {operator.get_username()}` for the current token"
        )
