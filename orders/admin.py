from django.contrib import admin, messages

from ledger.admin import ReadOnlyAdminMixin

from .models import Market, Order, OrderEvent, Trade
from .services import market_set_status


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = ("symbol", "status", "shard", "tick_size", "lot_size", "min_notional", "maker_fee", "taker_fee")
    list_filter = ("status", "shard")
    actions = ("halt", "resume")

    def get_readonly_fields(self, request, obj=None):
        # Increments and assets are fixed once orders may exist; status changes go through the actions.
        return ("symbol", "base", "quote", "tick_size", "lot_size", "status") if obj else ("status",)

    @admin.action(description="Halt trading in the selected markets")
    def halt(self, request, queryset):
        for market in queryset:
            market_set_status(market=market, status=Market.Status.HALTED)
        messages.success(request, f"Halted {queryset.count()} market(s).")

    @admin.action(description="Resume trading in the selected markets")
    def resume(self, request, queryset):
        for market in queryset:
            market_set_status(market=market, status=Market.Status.OPEN)
        messages.success(request, f"Resumed {queryset.count()} market(s).")


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
