from django.core.management.base import BaseCommand, CommandError

from exchange_site.errors import RuleViolation
from orders.models import Market
from orders.services import market_resume


class Command(BaseCommand):
    help = "Resume trading in a halted market. Audited."

    def add_arguments(self, parser):
        parser.add_argument("symbol")
        parser.add_argument("--reason", default="", help="optional; kept in the audit log")

    def handle(self, *args, **options):
        market = Market.objects.filter(symbol=options["symbol"].upper()).first()
        if market is None:
            raise CommandError(f"No market {options['symbol']}.")
        try:
            market_resume(market=market, reason=options["reason"], actor="manage.py resumemarket")
        except RuleViolation as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Resumed {market.symbol}.")
