"""The audit log of operator actions. Call ``audit_record`` inside the transaction of the action it records."""

from __future__ import annotations

from .models import AuditEntry


def audit_record(*, actor, action: str, target: str, reason: str = "", details: dict | None = None) -> AuditEntry:
    """Record one operator action. ``actor`` is a user, or a string (e.g. ``"manage.py haltmarket"``)."""
    if actor is None or isinstance(actor, str):
        user, label = None, actor or "system"
    else:
        user, label = actor, actor.get_username()
    return AuditEntry.objects.create(
        actor=user,
        actor_label=label,
        action=action,
        target=str(target)[:200],
        reason=reason or "",
        details=details or {},
    )
