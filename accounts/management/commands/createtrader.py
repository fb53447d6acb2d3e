from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.services import token_create, user_create
from exchange_site.errors import RuleViolation
from ledger.services import asset_get, funds_deposit


class Command(BaseCommand):
    help = "Create a trader, deposit funds, and print an API token on the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", default=None)
        parser.add_argument("--deposit", action="append", default=[], metavar="ASSET=AMOUNT")

    def handle(self, *args, username, password, deposit, **options):
        try:
            with transaction.atomic():
                user = user_create(username=username, password=password)
                for item in deposit:
                    asset_code, sep, amount = item.partition("=")
                    if not sep:
                        raise RuleViolation("invalid_deposit", f"--deposit takes ASSET=AMOUNT, not {item!r}.")
                    funds_deposit(user=user, asset=asset_get(code=asset_code), amount=amount, memo="createtrader")
                _, key = token_create(user=user, name="createtrader")
        except RuleViolation as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"Created trader {user.username}.")
        self.stdout.write(key)
