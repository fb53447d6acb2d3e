"""Deposit and withdrawal requests: the brokerage's record of money asked to come in or go out.

The money itself moves only by ledger transfers whose references name the request
(``deposit:<id>``, ``withdrawal:<id>:hold``, ``withdrawal:<id>:send``, ``withdrawal:<id>:release``),
so each step posts at most once whatever is clicked twice. A pending withdrawal's amount sits in the
owner's ``locked`` balance: it is still the owner's money, shown as held, until it leaves.
"""

from django.conf import settings
from django.db import models

from ledger.models import Asset, amount_field


class FundingRequest(models.Model):
    class Kind(models.TextChoices):
        DEPOSIT = "deposit"
        WITHDRAWAL = "withdrawal"

    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        REJECTED = "rejected"
        CANCELED = "canceled"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="funding_requests")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    amount = amount_field()
    # Where a withdrawal goes (an address or bank account); empty for deposits.
    destination = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    # The client's idempotency key: the same one again returns the existing request.
    # NULL, not "": the unique constraint must let any number of requests have none.
    client_request_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # Why an operator rejected it; "demo" when a demo deposit was confirmed without one.
    reason = models.CharField(max_length=255, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "kind", "id"])]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "kind", "client_request_id"], name="funding_client_request_id_unique_per_user"
            ),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="funding_amount_positive"),
        ]
        permissions = [("decide_fundingrequest", "Can confirm, approve or reject deposits and withdrawals")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.amount} {self.asset_id} {self.status}"
