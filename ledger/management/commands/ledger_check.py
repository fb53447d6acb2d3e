from django.core.management.base import BaseCommand, CommandError

from orders.selectors import exchange_problems


class Command(BaseCommand):
    help = "Check every ledger invariant; exit 1 with a report when one breaks. Exact on a live exchange."

    def handle(self, *args, **options):
        problems = exchange_problems()
        if problems:
            for line in problems:
                self.stderr.write(f"FAIL {line}")
            raise CommandError(f"{len(problems)} ledger invariant(s) broken.", returncode=1)
        self.stdout.write(
            "ledger_check: OK (balances sum to zero per asset, match their transfers, none negative, clearing accounts empty, locked balances match open orders and pending withdrawals)"
        )
