from decimal import Decimal

import factory

from ledger.services import asset_get_or_create
from orders.models import Market


class MarketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Market
        django_get_or_create = ("symbol",)

    symbol = "BTC-USD"
    base = factory.LazyAttribute(lambda m: asset_get_or_create(code=m.symbol.split("-")[0]))
    quote = factory.LazyAttribute(lambda m: asset_get_or_create(code=m.symbol.split("-")[1]))
    tick_size = Decimal("0.01")
    lot_size = Decimal("0.001")
    min_notional = Decimal("1")
    maker_fee = Decimal("0.001")
    taker_fee = Decimal("0.002")
    shard = 0
