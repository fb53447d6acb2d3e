from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from exchange_site.admin import ReadOnlyAdminMixin
from exchange_site.errors import RuleViolation

from .models import Market, Order, OrderEvent, Trade
from .services import market_create, market_fields_clean, market_halt, market_resume, market_update

# Fixed once a market exists: resting orders and the shard's books are built on them.
MARKET_FIXED = ("symbol", "base", "quote", "tick_size", "lot_size", "shard", "status")
CREATE_FIELDS = ("symbol", "tick_size", "lot_size", "min_notional", "maker_fee", "taker_fee", "shard")


def _form_error(exc: RuleViolation, form: forms.Form) -> ValidationError:
    fields = {name: messages for name, messages in exc.fields.items() if name in form.fields}
    return ValidationError(fields or exc.message)


class MarketForm(forms.ModelForm):
    """Checks edits with the services' own rules, so a refused change shows on the form."""

    actor = None  # set per request by MarketAdmin.get_form

    class Meta:
        model = Market
        fields = ("protection_pct", *CREATE_FIELDS)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            if self.instance.pk:
                market_fields_clean(**{name: cleaned[name] for name in self.changed_data if name in cleaned})
            else:
                # Created here, inside the admin's transaction, so the symbol and increment rules
                # of market_create are shown on the form; MarketAdmin.save_model only picks it up.
                self.created = market_create(actor=self.actor, **{name: cleaned[name] for name in CREATE_FIELDS})
        except RuleViolation as exc:
            raise _form_error(exc, self) from None
        return cleaned

    def validate_unique(self):
        # A new market was created in clean() by market_create, which refuses a taken symbol itself.
        if self.instance.pk:
            super().validate_unique()


class HaltForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="Kept in the audit log.")


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    form = MarketForm
    list_display = ("symbol", "status", "shard", "tick_size", "lot_size", "min_notional", "maker_fee", "taker_fee")
    list_filter = ("status", "shard")
    actions = ("halt", "resume")

    def get_fields(self, request, obj=None):
        return super().get_fields(request, obj) if obj else CREATE_FIELDS

    def get_readonly_fields(self, request, obj=None):
        # Status changes go through the halt and resume actions.
        return MARKET_FIXED if obj else ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user
        return form

    def save_model(self, request, obj, form, change):
        if not change:
            obj.__dict__.update(form.created.__dict__)
            return
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name not in MARKET_FIXED}
        updated = market_update(market=obj, actor=request.user, **fields)
        obj.__dict__.update(updated.__dict__)

    @admin.action(description="Halt trading in the selected markets")
    def halt(self, request, queryset):
        form = HaltForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Halt trading",
                "markets": queryset,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/orders/market/halt.html", context)
        for market in queryset:
            try:
                market_halt(market=market, reason=form.cleaned_data["reason"], actor=request.user)
                messages.success(request, f"Halted {market.symbol}.")
            except RuleViolation as exc:
                messages.warning(request, exc.message)
        return None

    @admin.action(description="Resume trading in the selected markets")
    def resume(self, request, queryset):
        for market in queryset:
            try:
                market_resume(market=market, actor=request.user)
                messages.success(request, f"Resumed {market.symbol}.")
            except RuleViolation as exc:
                messages.warning(request, exc.message)


class OrderEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The order's lifecycle journal, oldest first; immutable."""

    model = OrderEvent
    fields = readonly_fields = (
        "id",
        "type",
        "at",
        "filled_quantity",
        "filled_quote",
        "remaining_quantity",
        "price",
        "quantity",
        "reason",
    )
    ordering = ("id",)
    extra = 0
    can_delete = False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    inlines = (OrderEventInline,)
    list_display = (
        "id",
        "user",
        "market",
        "side",
        "type",
        "price",
        "quantity",
        "filled_quantity",
        "status",
        "created_at",
    )
    list_filter = ("status", "market", "side", "type")
    search_fields = ("id", "user__username", "client_order_id")
    list_select_related = ("user", "market")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Order._meta.fields]


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "market",
        "sequence",
        "price",
        "quantity",
        "taker_side",
        "maker_user",
        "taker_user",
        "created_at",
    )
    list_filter = ("market",)
    search_fields = ("maker_user__username", "taker_user__username")
    list_select_related = ("market", "maker_user", "taker_user")
