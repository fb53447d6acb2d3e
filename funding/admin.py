from functools import partial

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse

from exchange_site.admin import ReadOnlyAdminMixin
from exchange_site.errors import RuleViolation

from .models import FundingRequest
from .services import DECIDE_PERMISSION, deposit_confirm, deposit_reject, withdrawal_approve, withdrawal_reject

Kind = FundingRequest.Kind


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=255, widget=forms.Textarea(attrs={"rows": 2}), help_text="Shown to the user.")


@admin.register(FundingRequest)
class FundingRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Deposits and withdrawals; operators decide them with the actions (each decision is audited)."""

    list_display = (
        "id",
        "created_at",
        "kind",
        "user",
        "asset",
        "amount",
        "destination",
        "status",
        "decided_by",
        "reason",
    )
    list_filter = ("status", "kind", "asset")
    search_fields = ("user__username", "destination", "client_request_id")
    list_select_related = ("user", "asset", "decided_by")
    date_hierarchy = "created_at"
    actions = ["approve_selected", "reject_selected"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in FundingRequest._meta.fields]

    def has_decide_permission(self, request):
        return request.user.has_perm(DECIDE_PERMISSION)

    @admin.action(description="Approve withdrawals / confirm deposits", permissions=["decide"])
    def approve_selected(self, request, queryset):
        done = 0
        for request_id, kind in queryset.values_list("id", "kind"):
            decide = deposit_confirm if kind == Kind.DEPOSIT else withdrawal_approve
            done += self._apply(request, partial(decide, request_id=request_id, operator=request.user))
        if done:
            messages.success(request, f"{done} request(s) completed.")

    @admin.action(description="Reject (with a reason; withdrawals get their hold back)", permissions=["decide"])
    def reject_selected(self, request, queryset):
        form = RejectForm(request.POST if "reason" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Reject funding requests",
                "form": form,
                "queryset": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/funding/reject.html", context)
        done = 0
        for request_id, kind in queryset.values_list("id", "kind"):
            decide = deposit_reject if kind == Kind.DEPOSIT else withdrawal_reject
            reason = form.cleaned_data["reason"]
            done += self._apply(request, partial(decide, request_id=request_id, operator=request.user, reason=reason))
        if done:
            messages.success(request, f"{done} request(s) rejected.")
        return None

    def _apply(self, request, decide) -> int:
        try:
            decide()
        except RuleViolation as exc:
            messages.error(request, exc.message)
            return 0
        return 1
