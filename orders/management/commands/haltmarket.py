from django.core.management.base import BaseCommand, CommandError

from exchange_site.errors import RuleViolation
from orders.models import Market
from orders.services import market_halt


class Command(BaseCommand):
    help = "Halt trading in a market: new orders are refused, nothing matches, cancels still work. Audited."

    def add_arguments(self, parser):
        parser.add_argument("symbol")
        parser.add_argument("--reason", required=True, help="why; kept in the audit log")

    def handle(self, *args, **options):
        market = Market.objects.filter(symbol=options["symbol"].upper()).first()
        if market is None:
            raise CommandError(f"No market {options['symbol']}.")
        try:
            market_halt(market=market, reason=options["reason"], actor="manage.py haltmarket")
        except RuleViolation as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Halted {market.symbol}: {options['reason']}")
