from decimal import Decimal

from django.conf import settings
from django.db import models

from ledger.models import Asset, amount_field


class Market(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        HALTED = "halted"

    symbol = models.CharField(max_length=32, unique=True)
    base = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    quote = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    tick_size = amount_field()
    lot_size = amount_field()
    min_notional = amount_field(default=0)
    maker_fee = models.DecimalField(max_digits=8, decimal_places=6, default=Decimal("0.001"))
    taker_fee = models.DecimalField(max_digits=8, decimal_places=6, default=Decimal("0.002"))
    # A market buy by quantity holds, and never pays more than, the best ask plus this percentage.
    protection_pct = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("5"))
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    # The matching shard that owns this market; one worker process per shard.
    shard = models.PositiveSmallIntegerField(default=0, db_index=True)

    class Meta:
        ordering = ["symbol"]

    def __str__(self) -> str:
        return self.symbol


class Order(models.Model):
    class Side(models.TextChoices):
        BUY = "buy"
        SELL = "sell"

    class Type(models.TextChoices):
        LIMIT = "limit"
        MARKET = "market"

    class TimeInForce(models.TextChoices):
        GTC = "GTC"
        IOC = "IOC"
        FOK = "FOK"
        GTD = "GTD"

    class Stp(models.TextChoices):
        CANCEL_NEWEST = "cancel_newest"
        CANCEL_OLDEST = "cancel_oldest"
        CANCEL_BOTH = "cancel_both"
        NONE = "none"

    class Status(models.TextChoices):
        PENDING = "pending"
        OPEN = "open"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        CANCELED = "canceled"
        EXPIRED = "expired"
        REJECTED = "rejected"

    LIVE_STATUSES = (Status.PENDING, Status.OPEN, Status.PARTIALLY_FILLED)
    FINAL_STATUSES = (Status.FILLED, Status.CANCELED, Status.EXPIRED, Status.REJECTED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="orders")
    # NULL, not "", when absent: the unique (user, client_order_id) must let many orders go without one.
    client_order_id = models.CharField(max_length=36, null=True, blank=True)  # noqa: DJ001
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=6, choices=Type.choices)
    price = amount_field(null=True, blank=True)
    quantity = amount_field(null=True, blank=True)
    quote_quantity = amount_field(null=True, blank=True)
    # Market orders only: the worst price they may trade at (set at placement, see order_place).
    protection_price = amount_field(null=True, blank=True)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.GTC)
    post_only = models.BooleanField(default=False)
    stp = models.CharField(max_length=13, choices=Stp.choices, default=Stp.CANCEL_NEWEST)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    filled_quantity = amount_field(default=0)
    filled_quote = amount_field(default=0)
    # Funds still held for this order (quote for a buy, base for a sell); 0 once it is final.
    hold_remaining = amount_field(default=0)
    reject_reason = models.CharField(max_length=40, blank=True)
    # Priority in the book, given by the shard worker when the engine first sees the order.
    sequence = models.BigIntegerField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # GTD orders only: when the engine expires what still rests.
    expire_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "client_order_id"], name="order_client_order_id_unique"),
        ]
        indexes = [
            models.Index(fields=["market", "status"]),
            models.Index(fields=["user", "status"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.quantity or self.quote_quantity} {self.market_id} @ {self.price}"


class Trade(models.Model):
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="trades")
    # Per-market trade number given by the shard worker: settling the same batch twice collides here.
    sequence = models.BigIntegerField()
    maker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    taker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    maker_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    taker_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    taker_side = models.CharField(max_length=4, choices=Order.Side.choices)
    price = amount_field()
    quantity = amount_field()
    maker_fee = amount_field(default=0)
    taker_fee = amount_field(default=0)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["market", "sequence"], name="trade_sequence_unique")]
        indexes = [
            models.Index(fields=["maker_user", "id"]),
            models.Index(fields=["taker_user", "id"]),
            models.Index(fields=["market", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.market_id} #{self.sequence} {self.quantity} @ {self.price}"


class OrderEvent(models.Model):
    """The order lifecycle journal: one immutable row per state change, written in the transaction
    of the change. An order's row equals the fold of its events (ordered by id)."""

    class Type(models.TextChoices):
        ACCEPTED = "accepted"
        OPENED = "opened"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        CANCEL_REQUESTED = "cancel_requested"
        CANCELED = "canceled"
        EXPIRED = "expired"
        REJECTED = "rejected"

    # No foreign key constraint, and no index of its own: the (order, id) index below serves every read,
    # and InnoDB would otherwise look up the order row for each event a batch inserts, which cost about
    # a fifth of the event INSERT. Both writers insert an order's events after, and in the same
    # transaction as, the order row they describe, and orders are never deleted.
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="events", db_constraint=False, db_index=False
    )
    type = models.CharField(max_length=16, choices=Type.choices)
    at = models.DateTimeField()
    # The order's figures after this change.
    filled_quantity = amount_field(default=0)
    filled_quote = amount_field(default=0)
    remaining_quantity = amount_field(null=True, blank=True)
    # A fill's price and quantity (partially_filled / filled); the order's own on "accepted".
    price = amount_field(null=True, blank=True)
    quantity = amount_field(null=True, blank=True)
    reason = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["order", "id"])]

    def __str__(self) -> str:
        return f"order {self.order_id} {self.type}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Order events are immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Order events are immutable.")
