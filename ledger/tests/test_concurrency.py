"""Two withdrawals racing on two real database connections: exactly one may win."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from exchange_site.errors import RuleViolation
from ledger.selectors import balance_of
from ledger.services import funds_deposit, funds_hold, funds_withdraw


def race(operation, user, asset, amount) -> list:
    barrier = threading.Barrier(2)
    outcomes = []

    def attempt():
        try:
            barrier.wait()
            operation(user=user, asset=asset, amount=amount)
            outcomes.append("ok")
        except RuleViolation as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.django_db(transaction=True)
@pytest.mark.bare_holds
@pytest.mark.parametrize("round_", range(20))
@pytest.mark.parametrize("operation", [funds_withdraw, funds_hold], ids=["withdraw", "hold"])
def test_two_concurrent_operations_exceeding_balance_only_one_succeeds(user, usd, operation, round_):
    funds_deposit(user=user, asset=usd, amount="100")
    outcomes = race(operation, user, usd, "60")
    assert sorted(outcomes) == ["insufficient_funds", "ok"]
    assert balance_of(user=user, asset_code="USD") == Decimal("40")
