"""Deposits and withdrawals: requests, their decisions, and the ledger transfers each step posts.

Every step runs in one transaction that locks the request row first and checks its state, so two
operators (or an operator and the owner) acting on one request at once settle it exactly once: the
second finds it no longer pending. Each ledger transfer's reference names the request and the step,
a second line of defence that the ledger's unique constraint enforces.

A withdrawal's amount is held in the owner's ``locked`` balance from request to decision, so the
user sees it held and the money cannot be spent twice; ``ledger_check`` counts pending withdrawals
with open orders when it compares locked balances to what holds them.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from audit.services import audit_record
from exchange_site.errors import NotFound, RuleViolation
from ledger.services import amount_validate, asset_get, funds_deposit, funds_hold, funds_release, funds_send_held

from .models import FundingRequest

Kind, Status = FundingRequest.Kind, FundingRequest.Status
DECIDE_PERMISSION = "funding.decide_fundingrequest"


def demo_deposit_limit(*, asset_code: str) -> Decimal:
    """What a user may deposit per asset and UTC day without an operator; zero when demo mode is off."""
    limits: dict[str, Decimal] = {}
    for part in str(settings.FUNDING_DEMO_DEPOSIT_LIMIT or "").split(","):
        code, _, amount = part.strip().rpartition("=")
        if amount.strip():
            try:
                limits[code.strip().upper() or "*"] = Decimal(amount.strip())
            except InvalidOperation:
                raise ImproperlyConfigured(f"FUNDING_DEMO_DEPOSIT_LIMIT: {part!r} is not ASSET=AMOUNT") from None
    return limits.get(asset_code.upper(), limits.get("*", Decimal(0)))


def _existing(*, user, kind: str, client_request_id: str | None, fields: dict) -> FundingRequest | None:
    """The request made before with this client id; refused if it asked for something else."""
    if not client_request_id:
        return None
    found = FundingRequest.objects.filter(user=user, kind=kind, client_request_id=client_request_id).first()
    if found is not None and any(getattr(found, name) != value for name, value in fields.items()):
        raise RuleViolation(
            "client_request_id_reused",
            "This client_request_id was used for a different request.",
            fields={"client_request_id": ["Already used for a different request."]},
            status_code=409,
        )
    return found


def _create(*, user, kind: str, client_request_id: str | None, **fields) -> FundingRequest:
    try:
        with transaction.atomic():
            return FundingRequest.objects.create(
                user=user, kind=kind, client_request_id=client_request_id or None, **fields
            )
    except IntegrityError:
        # A concurrent request with the same client id won: report it as a replay.
        raise RuleViolation(
            "client_request_id_reused", "This client_request_id is already in use.", status_code=409
        ) from None


def deposit_request(*, user, asset: str, amount, client_request_id: str | None = None) -> tuple[FundingRequest, bool]:
    """A deposit request: pending for an operator, or completed at once within the demo limit.

    Returns (request, created); the same ``client_request_id`` again returns the first request.
    """
    asset_obj = asset_get(code=asset)
    value = amount_validate(amount=amount, asset=asset_obj)
    fields = {"asset_id": asset_obj.pk, "amount": value}
    with transaction.atomic(durable=True):
        # The user's row serializes their own requests: the demo limit and client ids hold under races.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        found = _existing(user=user, kind=Kind.DEPOSIT, client_request_id=client_request_id, fields=fields)
        if found is not None:
            return found, False
        request = _create(user=user, kind=Kind.DEPOSIT, client_request_id=client_request_id, **fields)
        limit = demo_deposit_limit(asset_code=asset_obj.code)
        if limit > 0 and _demo_deposited_today(user=user, asset_id=asset_obj.pk) + value <= limit:
            _deposit_complete(request=request, operator=None, reason="demo")
    return request, True


def _demo_deposited_today(*, user, asset_id: int) -> Decimal:
    start = datetime.combine(timezone.now().astimezone(UTC).date(), time.min, tzinfo=UTC)
    total = FundingRequest.objects.filter(
        user=user,
        kind=Kind.DEPOSIT,
        asset_id=asset_id,
        status=Status.COMPLETED,
        decided_by=None,
        decided_at__gte=start,
        decided_at__lt=start + timedelta(days=1),
    ).aggregate(total=Sum("amount"))["total"]
    return total or Decimal(0)


def _deposit_complete(*, request: FundingRequest, operator, reason: str = "") -> None:
    funds_deposit(
        user=request.user,
        asset=request.asset,
        amount=request.amount,
        reference=f"deposit:{request.pk}",
        memo=f"deposit #{request.pk}",
        created_by=operator,
    )
    _decide(request=request, status=Status.COMPLETED, operator=operator, reason=reason)


def _decide(*, request: FundingRequest, status: str, operator, reason: str = "") -> None:
    request.status = status
    request.reason = reason[:255]
    request.decided_by = operator
    request.decided_at = timezone.now()
    request.save(update_fields=["status", "reason", "decided_by", "decided_at", "updated_at"])


def withdrawal_request(
    *, user, asset: str, amount, destination: str, client_request_id: str | None = None
) -> tuple[FundingRequest, bool]:
    """A withdrawal request whose amount is held at once; refused (holding nothing) beyond the available balance."""
    asset_obj = asset_get(code=asset)
    value = amount_validate(amount=amount, asset=asset_obj)
    destination = (destination or "").strip()
    if not destination:
        raise RuleViolation(
            "destination_required", "A withdrawal needs a destination.", fields={"destination": ["Required."]}
        )
    fields = {"asset_id": asset_obj.pk, "amount": value, "destination": destination}
    with transaction.atomic(durable=True):
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        found = _existing(user=user, kind=Kind.WITHDRAWAL, client_request_id=client_request_id, fields=fields)
        if found is not None:
            return found, False
        request = _create(user=user, kind=Kind.WITHDRAWAL, client_request_id=client_request_id, **fields)
        # InsufficientFunds here rolls the request back with the hold: nothing is held, nothing recorded.
        funds_hold(
            user=user,
            asset=asset_obj,
            amount=value,
            reference=f"withdrawal:{request.pk}:hold",
            memo=f"withdrawal #{request.pk}",
        )
    return request, True


def _locked_pending(*, request_id: int, kind: str, user=None) -> FundingRequest:
    """The request row, locked; refused unless it is still pending."""
    queryset = (
        FundingRequest.objects.select_for_update().select_related("user", "asset").filter(pk=request_id, kind=kind)
    )
    if user is not None:
        queryset = queryset.filter(user=user)
    request = queryset.first()
    if request is None:
        raise NotFound(f"No such {kind}.", code=f"{kind}_not_found")
    if request.status != Status.PENDING:
        raise RuleViolation(
            "not_pending", f"{kind.title()} #{request.pk} is already {request.status}.", status_code=409
        )
    return request


def _require_operator(operator) -> None:
    if operator is None or not operator.has_perm(DECIDE_PERMISSION):
        raise RuleViolation("permission_denied", "You may not decide funding requests.", status_code=403)


def _audit(*, operator, action: str, request: FundingRequest, reason: str = "") -> None:
    audit_record(
        actor=operator,
        action=action,
        target=f"{request.kind}:{request.pk}",
        reason=reason,
        details={
            "user": request.user.get_username(),
            "asset": request.asset.code,
            "amount": str(request.amount),
            "destination": request.destination,
        },
    )


def deposit_confirm(*, request_id: int, operator) -> FundingRequest:
    """An operator saw the money arrive: the deposit is credited to the user's available balance."""
    _require_operator(operator)
    with transaction.atomic(durable=True):
        request = _locked_pending(request_id=request_id, kind=Kind.DEPOSIT)
        _deposit_complete(request=request, operator=operator)
        _audit(operator=operator, action="deposit_confirm", request=request)
    return request


def deposit_reject(*, request_id: int, operator, reason: str) -> FundingRequest:
    """The money never arrived: nothing was credited, so nothing moves."""
    _require_operator(operator)
    reason = _reason_required(reason)
    with transaction.atomic(durable=True):
        request = _locked_pending(request_id=request_id, kind=Kind.DEPOSIT)
        _decide(request=request, status=Status.REJECTED, operator=operator, reason=reason)
        _audit(operator=operator, action="deposit_reject", request=request, reason=reason)
    return request


def withdrawal_approve(*, request_id: int, operator) -> FundingRequest:
    """The held amount leaves to the external account."""
    _require_operator(operator)
    with transaction.atomic(durable=True):
        request = _locked_pending(request_id=request_id, kind=Kind.WITHDRAWAL)
        funds_send_held(
            user=request.user,
            asset=request.asset,
            amount=request.amount,
            reference=f"withdrawal:{request.pk}:send",
            memo=f"withdrawal #{request.pk} to {request.destination}",
            created_by=operator,
        )
        _decide(request=request, status=Status.COMPLETED, operator=operator)
        _audit(operator=operator, action="withdrawal_approve", request=request)
    return request


def withdrawal_reject(*, request_id: int, operator, reason: str) -> FundingRequest:
    """Refused: exactly the held amount goes back to the owner's available balance."""
    _require_operator(operator)
    reason = _reason_required(reason)
    with transaction.atomic(durable=True):
        request = _locked_pending(request_id=request_id, kind=Kind.WITHDRAWAL)
        _withdrawal_release(request=request, status=Status.REJECTED, operator=operator, reason=reason)
        _audit(operator=operator, action="withdrawal_reject", request=request, reason=reason)
    return request


def withdrawal_cancel(*, user, request_id: int) -> FundingRequest:
    """The owner changed their mind while it was pending: the hold is released."""
    with transaction.atomic(durable=True):
        request = _locked_pending(request_id=request_id, kind=Kind.WITHDRAWAL, user=user)
        _withdrawal_release(request=request, status=Status.CANCELED, operator=None)
    return request


def _withdrawal_release(*, request: FundingRequest, status: str, operator, reason: str = "") -> None:
    # One reference for reject and cancel: whichever comes first releases, the other cannot.
    funds_release(
        user=request.user,
        asset=request.asset,
        amount=request.amount,
        reference=f"withdrawal:{request.pk}:release",
        memo=f"withdrawal #{request.pk} {status}",
    )
    _decide(request=request, status=status, operator=operator, reason=reason)


def _reason_required(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise RuleViolation("reason_required", "A rejection needs a reason.", fields={"reason": ["Required."]})
    return reason
