from django.contrib import admin

from exchange_site.admin import ReadOnlyAdminMixin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only for everyone, superusers included: the log is evidence."""

    list_display = ("created_at", "actor_label", "action", "target", "reason")
    list_filter = ("action",)
    search_fields = ("actor_label", "target", "reason")
    date_hierarchy = "created_at"
