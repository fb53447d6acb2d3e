from django.core.management.base import BaseCommand, CommandError

from exchange_site.errors import RuleViolation
from orders.services import market_create


class Command(BaseCommand):
    help = "Create a market (and its assets as needed)."

    def add_arguments(self, parser):
        parser.add_argument("symbol")
        parser.add_argument("--tick-size", required=True)
        parser.add_argument("--lot-size", required=True)
        parser.add_argument("--min-notional", default="0")
        parser.add_argument("--maker-fee", default="0.001")
        parser.add_argument("--taker-fee", default="0.002")
        parser.add_argument("--shard", type=int, default=0)

    def handle(self, *args, **o):
        try:
            market = market_create(
                symbol=o["symbol"],
                tick_size=o["tick_size"],
                lot_size=o["lot_size"],
                min_notional=o["min_notional"],
                maker_fee=o["maker_fee"],
                taker_fee=o["taker_fee"],
                shard=o["shard"],
            )
        except RuleViolation as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Created market {market.symbol} on shard {market.shard}.")
