from rest_framework import exceptions, permissions

from .models import ApiKey


class InsufficientScope(exceptions.PermissionDenied):
    default_detail = "This API key may only read; it needs the trade scope."
    default_code = "insufficient_scope"


class ApiKeyScope(permissions.BasePermission):
    """A signed request may change something (place, cancel, fund) only with a ``trade`` key.

    Token and session callers keep every right. Applied to every API view by default
    (REST_FRAMEWORK's DEFAULT_PERMISSION_CLASSES); a view with its own permission_classes keeps it
    in the list (a test checks every view that accepts signed requests).
    """

    def has_permission(self, request, view):
        if isinstance(request.auth, ApiKey) and request.method not in permissions.SAFE_METHODS:
            if ApiKey.Scope.TRADE not in request.auth.scope_set:
                raise InsufficientScope()
        return True
