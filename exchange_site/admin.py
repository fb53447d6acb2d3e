"""Admin pieces shared by the apps."""


class ReadOnlyAdminMixin:
    """Rows the admin shows and never changes: money moved only by services, immutable records
    (transfers, journals, the audit log), requests decided only through their actions."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
