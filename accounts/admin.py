import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from exchange_site.errors import RuleViolation
from ledger.admin import BalanceInline
from ledger.models import Asset
from ledger.services import balance_adjust

from .models import ApiToken

User = get_user_model()


class AdjustBalanceForm(forms.Form):
    asset = forms.ModelChoiceField(queryset=Asset.objects.all())
    direction = forms.ChoiceField(choices=[("credit", "Credit (deposit)"), ("debit", "Debit (withdraw)")])
    amount = forms.CharField(help_text="A positive decimal, e.g. 100.50")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Required; kept on the transfer.")
    # Generated when the form is shown: submitting the same form twice adjusts once.
    reference = forms.CharField(
        max_length=64, required=False, widget=forms.HiddenInput, initial=lambda: uuid.uuid4().hex
    )


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("name", "prefix", "created_at", "last_used_at")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


admin.site.unregister(User)


@admin.register(User)
class TraderAdmin(UserAdmin):
    inlines = [BalanceInline, ApiTokenInline]
    change_form_template = "admin/accounts/user_change_form.html"

    def get_urls(self):
        return [
            path(
                "<int:user_id>/adjust-balance/",
                self.admin_site.admin_view(self.adjust_balance_view),
                name="accounts_user_adjust_balance",
            ),
            *super().get_urls(),
        ]

    def adjust_balance_view(self, request, user_id: int):
        if not request.user.has_perm("ledger.add_transfer") and not request.user.is_superuser:
            messages.error(request, "You may not adjust balances.")
            return redirect(reverse("admin:auth_user_change", args=[user_id]))
        user = get_object_or_404(User, pk=user_id)
        form = AdjustBalanceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                amount = balance_adjust(
                    user=user,
                    asset=form.cleaned_data["asset"],
                    amount=form.cleaned_data["amount"],
                    direction=form.cleaned_data["direction"],
                    reason=form.cleaned_data["reason"],
                    operator=request.user,
                    reference=form.cleaned_data["reference"],
                )
            except RuleViolation as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request,
                    f"{form.cleaned_data['direction'].title()}ed {amount} {form.cleaned_data['asset']} to {user}.",
                )
                return redirect(reverse("admin:auth_user_change", args=[user_id]))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "subject": user,
            "title": f"Adjust balance of {user}",
            "opts": self.model._meta,
        }
        return render(request, "admin/accounts/adjust_balance.html", context)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    search_fields = ("prefix", "user__username", "name")
    readonly_fields = ("user", "prefix", "digest", "created_at", "last_used_at")
