"""Double-entry ledger after TigerBeetle's model.

Money lives in ledger accounts; it only ever moves by an immutable ``Transfer`` from a debit
account to a credit account of the same asset. Each account carries its materialized balance
(credits minus debits), updated in the same transaction as the transfer that changes it, so reads
are cheap and ``ledger_check`` can prove the two agree. Per asset, all balances sum to zero: the
system "external" account is the counterparty of deposits and withdrawals and goes negative by
what users hold.
"""

from django.conf import settings
from django.db import models


def amount_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(
        max_digits=settings.AMOUNT_MAX_DIGITS, decimal_places=settings.AMOUNT_DECIMAL_PLACES, **kwargs
    )


class Asset(models.Model):
    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=64, blank=True)
    # Decimal places an amount of this asset may carry (BTC 8, USD 2, ...).
    precision = models.PositiveSmallIntegerField(default=8)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class LedgerAccount(models.Model):
    class Kind(models.TextChoices):
        AVAILABLE = "available"
        LOCKED = "locked"
        EXTERNAL = "external"  # system: counterparty of deposits and withdrawals
        FEES = "fees"  # system: where trading fees go
        # system: what a settlement batch moves passes through here; zero again when the batch commits
        CLEARING = "clearing"

    USER_KINDS = (Kind.AVAILABLE, Kind.LOCKED)

    # "user:<id>:<asset>:<kind>" or "system:<asset>:<kind>": one account per key, enforced by the
    # database (a unique (user, asset, kind) would not hold for system rows, whose user is NULL).
    key = models.CharField(max_length=80, unique=True)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="accounts")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    balance = amount_field(default=0)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["user", "asset"])]

    def __str__(self) -> str:
        return self.key

    @staticmethod
    def key_for(*, asset_code: str, kind: str, user_id: int | None) -> str:
        if user_id is None:
            return f"system:{asset_code}:{kind}"
        return f"user:{user_id}:{asset_code}:{kind}"


class ImmutableError(Exception):
    pass


class TransferQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableError("Transfers are append-only; post a correcting transfer instead.")

    def delete(self):
        raise ImmutableError("Transfers are append-only; post a correcting transfer instead.")


class Transfer(models.Model):
    class Kind(models.TextChoices):
        DEPOSIT = "deposit"
        WITHDRAWAL = "withdrawal"
        HOLD = "hold"
        RELEASE = "release"
        TRADE = "trade"
        FEE = "fee"
        ADJUSTMENT = "adjustment"

    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    debit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="debits")
    credit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="credits")
    amount = amount_field()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Idempotency key: the same business event can never post twice.
    reference = models.CharField(max_length=100, unique=True)
    memo = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = TransferQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(
                condition=~models.Q(debit_account=models.F("credit_account")), name="transfer_distinct_accounts"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.asset_id} #{self.pk}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ImmutableError("Transfers are append-only; post a correcting transfer instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableError("Transfers are append-only; post a correcting transfer instead.")
