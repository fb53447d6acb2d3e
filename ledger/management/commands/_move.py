from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import user_get
from exchange_site.errors import RuleViolation
from ledger.selectors import balance_of
from ledger.services import asset_get


class MoveCommand(BaseCommand):
    """deposit and withdraw: one ledger transfer between a user and the external account."""

    service = None
    verb = ""

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("asset")
        parser.add_argument("amount")
        parser.add_argument("--memo", default="")

    def handle(self, *args, username, asset, amount, memo, **options):
        try:
            user = user_get(username=username)
            asset_row = asset_get(code=asset)
            value = type(self).service(user=user, asset=asset_row, amount=amount, memo=memo or f"manage.py {self.verb}")
        except RuleViolation as exc:
            raise CommandError(exc.message) from None
        available = balance_of(user=user, asset_code=asset_row.code)
        self.stdout.write(f"{self.verb} {value} {asset_row.code} for {user.username}; available now {available}")
