from django.contrib import admin

from exchange_site.admin import ReadOnlyAdminMixin

from .models import Asset, LedgerAccount, Transfer


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "precision")
    search_fields = ("code", "name")

    def get_readonly_fields(self, request, obj=None):
        # Changing the precision of an asset that has balances would orphan their digits.
        return ("code", "precision") if obj else ()


class BalanceInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LedgerAccount
    fields = ("asset", "kind", "balance")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Balances"


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "user", "asset", "kind", "balance")
    list_filter = ("kind", "asset")
    search_fields = ("key", "user__username")
    readonly_fields = ("key", "user", "asset", "kind", "balance")


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "kind",
        "asset",
        "amount",
        "debit_account",
        "credit_account",
        "reference",
        "created_by",
        "memo",
    )
    list_filter = ("kind", "asset", "created_at")
    search_fields = (
        "reference",
        "memo",
        "debit_account__key",
        "credit_account__key",
        "debit_account__user__username",
        "credit_account__user__username",
    )
    list_select_related = ("asset", "debit_account", "credit_account", "created_by")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Transfer._meta.fields]
