from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from exchange_site.errors import RuleViolation
from ledger.apis import StatementApi, statement_csv
from ledger.models import Asset
from ledger.selectors import balances_for_user, statement_for_user

from .forms import DepositForm, WithdrawalForm
from .models import FundingRequest
from .selectors import funding_requests_for_user
from .services import deposit_request, withdrawal_cancel, withdrawal_request

Kind = FundingRequest.Kind


@login_required
def funding_page(request):
    """Balances per asset, deposit and withdrawal forms, and the history of both with cancel."""
    deposit_form, withdrawal_form = DepositForm(prefix="deposit"), WithdrawalForm(prefix="withdraw")
    if request.method == "POST":
        is_deposit = "deposit-amount" in request.POST
        form = (
            DepositForm(request.POST, prefix="deposit")
            if is_deposit
            else WithdrawalForm(request.POST, prefix="withdraw")
        )
        if form.is_valid():
            try:
                if is_deposit:
                    done, _ = deposit_request(user=request.user, **form.cleaned_data)
                else:
                    done, _ = withdrawal_request(user=request.user, **form.cleaned_data)
            except RuleViolation as exc:
                form.add_error(next(iter(exc.fields), None) if exc.fields else None, exc.message)
            else:
                messages.success(
                    request,
                    f"{done.kind.title()} #{done.pk} of {done.amount.normalize():f} {done.asset}: {done.status}.",
                )
                return redirect("funding")
        if is_deposit:
            deposit_form = form
        else:
            withdrawal_form = form
    asset = (request.GET.get("asset") or "").upper() or None
    deposits, _ = funding_requests_for_user(user=request.user, kind=Kind.DEPOSIT, asset=asset, limit=50)
    withdrawals, _ = funding_requests_for_user(user=request.user, kind=Kind.WITHDRAWAL, asset=asset, limit=50)
    history = sorted([*deposits, *withdrawals], key=lambda row: row.created_at, reverse=True)
    context = {
        "balances": balances_for_user(user=request.user),
        "deposit_form": deposit_form,
        "withdrawal_form": withdrawal_form,
        "history": history,
        "asset": asset,
        "assets": Asset.objects.order_by("code").values_list("code", flat=True),
    }
    return render(request, "funding/funding.html", context, status=400 if request.method == "POST" else 200)


@login_required
@require_POST
def withdrawal_cancel_view(request, withdrawal_id: int):
    try:
        withdrawal_cancel(user=request.user, request_id=withdrawal_id)
        messages.success(request, f"Withdrawal #{withdrawal_id} canceled; its amount is available again.")
    except RuleViolation as exc:
        messages.error(request, exc.message)
    return redirect("funding")


@login_required
def statement_page(request):
    """The user's ledger entries with running balances, filtered by asset, a page at a time, or as CSV."""
    asset = (request.GET.get("asset") or "").upper() or None
    try:
        cursor = int(request.GET.get("cursor") or 0) or None
    except ValueError:
        cursor = None
    if request.GET.get("format") == "csv":
        entries, _ = statement_for_user(user=request.user, asset=asset, limit=None)
        return statement_csv(StatementApi.OutputSerializer(entries, many=True).data, asset=asset)
    entries, next_cursor = statement_for_user(user=request.user, asset=asset, cursor=cursor, limit=50)
    next_url = None
    if next_cursor:
        next_url = reverse("statement") + f"?cursor={next_cursor}" + (f"&asset={asset}" if asset else "")
    context = {
        "entries": entries,
        "asset": asset,
        "assets": Asset.objects.order_by("code").values_list("code", flat=True),
        "next_url": next_url,
        "first_page": cursor is None,
    }
    return render(request, "funding/statement.html", context)
