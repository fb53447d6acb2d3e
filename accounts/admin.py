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

from .models import ApiKey, ApiToken
from .services import api_key_revoke_by_operator, token_revoke_by_operator

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
    # Revoking goes through the audited "Revoke" action of the token list, never a bare edit.
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("name", "key_id", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


admin.site.unregister(User)


@admin.register(User)
class TraderAdmin(UserAdmin):
    inlines = [BalanceInline, ApiTokenInline, ApiKeyInline]
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


class RevokeAuditedMixin:
    """Credentials are never edited or deleted in the admin: only revoked, with an audit entry."""

    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields if field.name not in (self.exclude or ())]

    @admin.action(description="Revoke selected (audited)")
    def revoke(self, request, queryset):
        count = 0
        for credential in queryset.filter(revoked_at__isnull=True):
            self.revoke_one(credential, operator=request.user)
            count += 1
        self.message_user(request, f"Revoked {count}.", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(RevokeAuditedMixin, admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    search_fields = ("prefix", "user__username", "name")
    exclude = ("digest",)

    def revoke_one(self, token, *, operator):
        token_revoke_by_operator(token=token, operator=operator, reason="revoked in the admin")


@admin.register(ApiKey)
class ApiKeyAdmin(RevokeAuditedMixin, admin.ModelAdmin):
    list_display = ("key_id", "user", "name", "scopes", "created_at", "last_used_at", "revoked_at")
    search_fields = ("key_id", "user__username", "name")
    # The encrypted secret is not shown, even encrypted.
    exclude = ("secret_encrypted",)

    def revoke_one(self, api_key, *, operator):
        api_key_revoke_by_operator(api_key=api_key, operator=operator, reason="revoked in the admin")
