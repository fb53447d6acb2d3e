from django.contrib import admin
from django.utils.html import format_html

from exchange_site.admin import ReadOnlyAdminMixin

from .models import FixMessage, FixSession


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    pass


@admin.register(FixSession)
class FixSessionAdmin(ReadOnlyAdmin):
    list_display = ("sender_comp_id", "user", "next_in_seq", "next_out_seq", "logged_on_at")
    search_fields = ("sender_comp_id",)


@admin.register(FixMessage)
class FixMessageAdmin(ReadOnlyAdmin):
    """The journal is evidence of what was said on the wire: read-only for everyone."""

    list_display = ("at", "sender_comp_id", "direction", "seq_num", "msg_type", "note", "wire")
    list_filter = ("direction", "msg_type", "note")
    search_fields = ("sender_comp_id", "raw")
    date_hierarchy = "at"
    fields = ("at", "session", "sender_comp_id", "direction", "seq_num", "msg_type", "note", "wire")

    @admin.display(description="message")
    def wire(self, obj):
        return format_html("<code>{}</code>", obj.raw.replace("\x01", "|"))
